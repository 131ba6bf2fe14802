// What a running cell may do with its outputs (streams and displays); the kernel provides it and
// every cell handler (ordinary cells, %%launch, launched functions) writes through it.
import type { StreamName } from "./stream-batcher";

export interface DisplayContent {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  transient?: Record<string, unknown>;
}

export interface CellOutput {
  stream(name: StreamName, text: string): void;
  display(content: DisplayContent, update?: boolean): void;
  flush(): void;
}
