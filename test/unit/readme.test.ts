import { readFileSync } from "fs";
import path from "path";
import { describe, expect, it } from "vitest";
import { OPTION_SPECS } from "../../launcher/contract";

describe("README", () => {
  const readme = readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");

  it("documents every launch option with its flag, its API name and an example", () => {
    for (const spec of OPTION_SPECS) {
      const camel = spec.flag.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
      const row = readme.split("\n").find((l) => l.startsWith(`| \`--${spec.flag}\``));
      expect(row, `README row for --${spec.flag}`).toBeDefined();
      expect(row).toContain(`\`${camel}\``);
      expect(row).toMatch(/`(%%launch|tslaunch|--)[^`]*`\s*\|$/);
    }
  });

  it("gives the two quick-start commands", () => {
    expect(readme).toContain("npm ci && npm start");
    expect(readme).toContain("npm test");
  });
});
