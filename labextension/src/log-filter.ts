// Shows one rank's lines of a cell's log. The log is the cell's ordinary stream outputs (stdout and
// stderr), where every line of rank r starts with r's prefix. The original output nodes are never
// changed: while a filter is on, each stream output's <pre> is hidden and a filtered plain-text copy
// is shown next to it; turning the filter off removes the copies and unhides the originals. New
// stream text (the output re-rendered by JupyterLab) is noticed by a MutationObserver and the
// filter is applied again.

const COPY_CLASS = 'tslaunch-filtered-log';
const HIDDEN_ATTR = 'data-tslaunch-hidden';
const STREAM_SELECTOR =
  '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"], .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';

const OBSERVE: MutationObserverInit = { childList: true, subtree: true, characterData: true };

export interface RankPrefix {
  rank: number;
  prefix: string;
}

/**
 * The rank a line belongs to: the rank with the longest prefix the line starts with (so that
 * "1" and "10" as prefixes do not steal each other's lines); null for a line no rank wrote.
 */
export function ownerOf(line: string, prefixes: readonly RankPrefix[]): number | null {
  let best: RankPrefix | null = null;
  for (const p of prefixes) {
    if (p.prefix.length > 0 && line.startsWith(p.prefix) && (best === null || p.prefix.length > best.prefix.length)) best = p;
  }
  return best ? best.rank : null;
}

/** The lines of `text` that belong to `rank`, each with its line end. */
export function linesOfRank(text: string, rank: number, prefixes: readonly RankPrefix[]): string {
  const out: string[] = [];
  for (const line of text.split(/(?<=\n)/)) {
    if (ownerOf(line, prefixes) === rank) out.push(line);
  }
  return out.join('');
}

export class LogFilter {
  private rank: number | null = null;
  private prefixes: RankPrefix[] = [];
  private observer: MutationObserver | null = null;
  private area: HTMLElement | null = null;

  /** `anchor` is any node inside the output area whose stream outputs are filtered. */
  constructor(private readonly anchor: HTMLElement) {}

  get activeRank(): number | null {
    return this.rank;
  }

  /** The prefixes may change (ranks appear as they start); re-applies when a filter is on. */
  setPrefixes(prefixes: RankPrefix[]): void {
    const changed = JSON.stringify(prefixes) !== JSON.stringify(this.prefixes);
    this.prefixes = prefixes;
    if (changed && this.rank !== null) this.apply();
  }

  /** Shows only `rank`'s lines; null shows everything again. */
  show(rank: number | null): void {
    this.rank = rank;
    if (rank === null) {
      this.stopObserving();
      this.restore();
      return;
    }
    this.apply();
    this.startObserving();
  }

  dispose(): void {
    this.stopObserving();
    this.restore();
    this.rank = null;
  }

  private outputArea(): HTMLElement | null {
    if (!this.area || !this.area.isConnected) this.area = this.anchor.closest('.jp-OutputArea') as HTMLElement | null;
    return this.area;
  }

  private restore(): void {
    const area = this.outputArea();
    if (!area) return;
    area.querySelectorAll(`.${COPY_CLASS}`).forEach((n) => n.remove());
    area.querySelectorAll<HTMLElement>(`[${HIDDEN_ATTR}]`).forEach((n) => {
      n.style.display = n.getAttribute(HIDDEN_ATTR) ?? '';
      n.removeAttribute(HIDDEN_ATTR);
    });
  }

  private apply(): void {
    const area = this.outputArea();
    if (!area || this.rank === null) return;
    // Our own changes are made while the observer is disconnected.
    const observer = this.observer;
    observer?.disconnect();
    this.restore();
    const rank = this.rank;
    area.querySelectorAll<HTMLElement>(STREAM_SELECTOR).forEach((output) => {
      const original = output.querySelector<HTMLElement>(`pre:not(.${COPY_CLASS})`);
      if (!original) return;
      const kept = linesOfRank(original.textContent ?? '', rank, this.prefixes);
      original.setAttribute(HIDDEN_ATTR, original.style.display);
      original.style.display = 'none';
      const copy = document.createElement('pre');
      copy.className = COPY_CLASS;
      copy.textContent = kept;
      if (kept.length === 0) copy.style.display = 'none';
      original.insertAdjacentElement('afterend', copy);
    });
    observer?.observe(area, OBSERVE);
  }

  private startObserving(): void {
    const area = this.outputArea();
    if (!area || this.observer) return;
    // Re-applied at once (a microtask after JupyterLab changed the output, before the next paint),
    // so the other ranks' new lines never show, not even for a frame.
    this.observer = new MutationObserver((records) => {
      if (this.rank !== null && records.some(touchesStream)) this.apply();
    });
    this.observer.observe(area, OBSERVE);
  }

  private stopObserving(): void {
    this.observer?.disconnect();
    this.observer = null;
  }
}

/** Whether a change is in a stream output, or adds one (not, e.g., the launch view ticking). */
function touchesStream(r: MutationRecord): boolean {
  const target = r.target instanceof Element ? r.target : r.target.parentElement;
  if (target?.closest(STREAM_SELECTOR)) return true;
  return Array.from(r.addedNodes).some((n) => n instanceof Element && (n.matches(STREAM_SELECTOR) || n.querySelector(STREAM_SELECTOR) !== null));
}
