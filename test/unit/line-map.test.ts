import { describe, expect, it } from "vitest";
import { alignLines } from "../../kernel/cells/line-map";

describe("JS line -> cell line alignment", () => {
  it("maps the converter's output of a typed cell back to its lines", () => {
    const source = ["import * as os from \"os\";", "interface Foo {", "  a: number;", "}", "function helper(x: number): string {", "  return \"h\" + x;", "}", "const y: Foo = {a: 1};", "y.a + 1"].join("\n");
    const js = [
      "Object.defineProperty(exports, \"__esModule\", { value: true });",
      "exports.y = exports.os = exports.helper = exports.tsLastExpr = void 0;",
      "const os = __importStar(require(\"os\"));",
      "exports.os = os;",
      "function helper(x) {",
      "    return \"h\" + x;",
      "}",
      "exports.helper = helper;",
      "const y = { a: 1 };",
      "exports.y = y;",
      "exports.tsLastExpr = y.a + 1;",
    ].join("\n");
    const map = alignLines(js, source);
    expect(map[2]).toBe(1); // import
    expect(map[5]).toBe(6); // return
    expect(map[8]).toBe(8); // const y
    expect(map[10]).toBe(9); // trailing expression
  });

  it("counts the %%launch line when the body starts on line 2", () => {
    const map = alignLines("const r = Number(process.env.RANK);\nif (r === 1) {\n    throw new Error(\"x\");\n}", "const r: number = Number(process.env.RANK);\nif (r === 1) {\n  throw new Error(\"x\");\n}", 2);
    expect(map).toEqual([2, 3, 4, 5]);
  });
});
