// What a running cell may do with its outputs (streams and displays); the kernel provides it and
// every cell handler (ordinary cells, %%launch, launched functions) writes through it.
import type { StreamName } from "./output-pacer";
import type { DisplayData } from "./wire";

export type DisplayContent = DisplayData;

export interface CellOutput {
  stream(name: StreamName, text: string): void;
  display(content: DisplayContent, update?: boolean): void;
  flush(): void;
}
