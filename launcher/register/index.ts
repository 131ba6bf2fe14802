// `node --import tslaunch/register script.mts`: runs a TypeScript script (`.ts`, `.mts`) as an ES
// module, transpiled on load (no type check, like tsx), in the script's process and, because a
// launch hands the script's execArgv to its workers, in every worker that imports the script.
import { register } from "module";
import { pathToFileURL } from "url";
import path from "path";

register(pathToFileURL(path.join(__dirname, "hooks.js")).href);
