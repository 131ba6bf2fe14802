// The globals a cell may use without an import: `display` (notebook-display.ts), and `prompt` /
// `input`, which ask the notebook's user through Jupyter's stdin channel. The kernel and the workers
// install their own implementations; the declarations and the errors both share live here.

/** Declared for the type checker: added to tslab's converter as a virtual module (cells/session.ts). */
export const NOTEBOOK_GLOBALS_DTS = `declare global {
  /** Shows a value: with its [Symbol.for("Jupyter.display")]() MIME bundle if it has one, else as text. */
  function display(value: unknown): void | Promise<void>;
  namespace display {
    function json(value: unknown): void;
    function html(html: string): void;
    function markdown(markdown: string): void;
    function latex(latex: string): void;
    function svg(svg: string): void;
    function png(bytes: Uint8Array): void;
    function jpeg(bytes: Uint8Array): void;
    function text(text: string): void;
    function bundle(bundle: Record<string, unknown>): void;
  }
  /**
   * Asks the notebook's user for a line of text and waits for it (the web's and Deno's prompt()).
   * An empty answer gives \`defaultValue\` when one is given. Needs a frontend that allows input.
   */
  function prompt(message?: string, defaultValue?: string): string | null;
  /** Asks the notebook's user for a line of text without blocking the kernel; \`password\` hides what is typed. */
  function input(message?: string, options?: { password?: boolean }): Promise<string>;
}
`;

/** What prompt()/input() throw when the request that runs the cell does not allow input. */
export class StdinNotAllowedError extends Error {
  override name = "StdinNotAllowedError";
  constructor(fn: "prompt" | "input", why: "not-allowed" | "no-cell" | "launch") {
    super(STDIN_MESSAGES[why](fn));
  }
}

const STDIN_MESSAGES = {
  "not-allowed": (fn: string) =>
    `${fn}() needs the frontend to answer an input request, and this one does not allow input (allow_stdin is false, as under nbconvert, ` +
    "nbclient and tslaunch execute). Run the cell in JupyterLab, the Notebook or jupyter console, or set the value in the cell instead of asking for it.",
  "no-cell": (fn: string) =>
    `${fn}() was called while no cell is running (from a timer or a callback after its cell ended): there is no request to answer it. Call it while the cell runs, e.g. await it.`,
  launch: (fn: string) =>
    `${fn}() is not available in a %%launch body or a launched function: ranks have no stdin. Ask in an ordinary cell before the launch and use the answer in the body (replayed cells' variables are there).`,
};
