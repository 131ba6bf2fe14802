import { describe, expect, it } from "vitest";
import { parseMagic } from "../../kernel/cells/magics";
import { completeMagic, inspectMagic } from "../../kernel/launch/magic-help";

describe("cell magics", () => {
  it("splits %%launch into its flags and body", () => {
    expect(parseMagic("%%launch -n 4\nconsole.log(1)\nx")).toEqual({ name: "launch", line: "-n 4", body: "console.log(1)\nx" });
    expect(parseMagic("%%launch")).toEqual({ name: "launch", line: "", body: "" });
    expect(parseMagic("const x = 1 %% 2")).toBeNull();
  });

  it("completes flag names and precision values on the %%launch line", () => {
    expect(completeMagic("%%launch --mixed", 16)?.matches).toEqual(["--mixed_precision"]);
    expect(completeMagic("%%launch --mixed_precision b", 28)?.matches).toEqual(["bf16"]);
    expect(completeMagic("%%launch -n 2\nconsole.", 20)).toBeNull();
  });

  it("explains a flag under the cursor", () => {
    expect(inspectMagic("%%launch --max_restarts 3", 14)).toMatch(/--max_restarts N\n.*restarted/);
  });
});
