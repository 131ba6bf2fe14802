// The widget that shows one launch: a header (ranks, nodes, backend, state, elapsed, restarts, a
// Stop button) and a row per rank. The kernel updates it in place (update_display_data), a few
// times a second at most; between updates the elapsed times tick on the browser's clock while the
// launch runs. Clicking a rank's row shows only that rank's lines in the cell's log.
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';
import { sessionContextFor } from './app-ref';
import { LogFilter } from './log-filter';
import { LAUNCH_VIEW_MIME, asLaunchModel, formatDuration, formatExit, isEnded, rankElapsed, type LaunchModel, type RankRow } from './model';

const TICK_MS = 200;
const STOP_RETRY_MS = 5000;
/** A first render of a model this much older than the browser's clock is a saved one, not a live launch. */
const STALE_MS = 60_000;

const COLUMNS: Array<{ key: string; label: string }> = [
  { key: 'rank', label: 'rank' },
  { key: 'node', label: 'node' },
  { key: 'pid', label: 'pid' },
  { key: 'state', label: 'state' },
  { key: 'elapsed', label: 'elapsed' },
  { key: 'restarts', label: 'restarts' },
  { key: 'exit', label: 'exit' },
  { key: 'last', label: 'last line' },
];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export class LaunchView extends Widget implements IRenderMime.IRenderer {
  private model: LaunchModel | null = null;
  /** performance.now() when the current model arrived, for ticking. */
  private receivedAt = 0;
  private renders = 0;
  private live = false;
  private timer: number | null = null;
  private stopping = false;
  private readonly filter: LogFilter;

  private readonly stateBadge = el('span', 'tslaunch-state');
  private readonly facts = el('span', 'tslaunch-facts');
  private readonly elapsed = el('span', 'tslaunch-elapsed');
  private readonly restarts = el('span', 'tslaunch-restarts');
  private readonly stopButton = el('button', 'tslaunch-stop jp-mod-styled', 'Stop');
  private readonly error = el('div', 'tslaunch-error');
  private readonly filterNote = el('div', 'tslaunch-filter-note');
  private readonly tbody = el('tbody');
  private readonly rows = new Map<number, HTMLTableRowElement>();

  constructor(private readonly options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('tslaunch-view');
    this.filter = new LogFilter(this.node);

    const header = el('div', 'tslaunch-header');
    header.append(el('span', 'tslaunch-title', 'tslaunch'), this.stateBadge, this.facts, this.elapsed, this.restarts, this.stopButton);
    this.stopButton.type = 'button';
    this.stopButton.title = 'Interrupt the kernel: stops this launch';
    this.stopButton.addEventListener('click', () => void this.stop());

    const table = el('table', 'tslaunch-ranks');
    const headRow = el('tr');
    for (const c of COLUMNS) headRow.append(el('th', `tslaunch-col-${c.key}`, c.label));
    table.append(el('thead'), this.tbody);
    table.tHead!.append(headRow);
    this.tbody.addEventListener('click', (ev) => this.onRowClick(ev));
    this.tbody.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        this.onRowClick(ev);
      }
    });

    this.error.hidden = true;
    this.filterNote.hidden = true;
    this.node.append(header, this.error, table, this.filterNote);
  }

  /** The rank whose lines the log shows, or null when it shows every rank. */
  get selectedRank(): number | null {
    return this.filter.activeRank;
  }

  async renderModel(mimeModel: IRenderMime.IMimeModel): Promise<void> {
    const model = asLaunchModel(mimeModel.data[LAUNCH_VIEW_MIME]);
    if (!model) {
      this.node.textContent = 'tslaunch: this launch view has an unknown format (a newer tslaunch?)';
      return;
    }
    this.renders++;
    this.model = model;
    this.receivedAt = performance.now();
    // A launch is live when the kernel updates it while we show it, or when it is fresh.
    if (this.renders > 1 || Math.abs(Date.now() - (model.startedAt + model.elapsedMs)) < STALE_MS) this.live = true;
    if (isEnded(model.state)) this.stopping = false;
    this.filter.setPrefixes(model.ranks.map((r) => ({ rank: r.rank, prefix: r.prefix })));
    this.render();
    this.updateTimer();
  }

  protected onBeforeDetach(): void {
    this.clearTimer();
  }

  protected onAfterAttach(): void {
    this.updateTimer();
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.clearTimer();
    this.filter.dispose();
    super.dispose();
  }

  /** ms since the launch started, now: the last update's elapsed plus the time since, while it runs. */
  private nowMs(): number {
    const m = this.model!;
    if (isEnded(m.state) || !this.live) return m.elapsedMs;
    return m.elapsedMs + (performance.now() - this.receivedAt);
  }

  private ticking(): boolean {
    return this.model !== null && this.live && !isEnded(this.model.state);
  }

  private updateTimer(): void {
    if (this.ticking() && this.isAttached) {
      if (this.timer === null) this.timer = window.setInterval(() => this.tick(), TICK_MS);
    } else {
      this.clearTimer();
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
  }

  /** Between updates only the times change. */
  private tick(): void {
    if (!this.model || !this.ticking()) {
      this.clearTimer();
      return;
    }
    const now = this.nowMs();
    this.elapsed.textContent = formatDuration(now);
    for (const r of this.model.ranks) {
      const tr = this.rows.get(r.rank);
      if (tr) tr.cells[4].textContent = formatDuration(rankElapsed(r, now));
    }
  }

  private render(): void {
    const m = this.model;
    if (!m) return;
    this.node.dataset.state = m.state;
    this.stateBadge.textContent = m.state;
    this.stateBadge.dataset.state = m.state;
    this.stateBadge.className = `tslaunch-state tslaunch-state-${m.state}`;
    const facts = [plural(m.worldSize, 'rank'), plural(m.numNodes, 'node'), m.backend];
    if (m.mixedPrecision && m.mixedPrecision !== 'no') facts.push(m.mixedPrecision);
    this.facts.textContent = facts.join(' · ');
    const now = this.nowMs();
    this.elapsed.textContent = formatDuration(now);
    this.elapsed.title = `started ${new Date(m.startedAt).toLocaleTimeString()}`;
    this.restarts.textContent = `restarts ${m.restarts}/${m.maxRestarts}`;

    const ended = isEnded(m.state);
    this.stopButton.disabled = ended || !this.live || this.stopping;
    this.stopButton.textContent = this.stopping ? 'Stopping…' : 'Stop';

    this.error.hidden = !m.error;
    this.error.textContent = m.error ? `failed: ${m.error}` : '';

    const seen = new Set<number>();
    for (const r of m.ranks) {
      seen.add(r.rank);
      let tr = this.rows.get(r.rank);
      if (!tr) {
        tr = this.newRow(r.rank);
        this.rows.set(r.rank, tr);
      }
      this.fillRow(tr, r, now);
    }
    for (const [rank, tr] of this.rows) {
      if (!seen.has(rank)) {
        tr.remove();
        this.rows.delete(rank);
      }
    }
    // Rows in rank order.
    [...this.rows.entries()].sort((a, b) => a[0] - b[0]).forEach(([, tr]) => this.tbody.append(tr));
    this.renderSelection();
  }

  private newRow(rank: number): HTMLTableRowElement {
    const tr = el('tr', 'tslaunch-rank');
    tr.dataset.rank = String(rank);
    tr.tabIndex = 0;
    tr.title = `Show only rank ${rank}'s lines in the log (click again for all ranks)`;
    for (const c of COLUMNS) tr.append(el('td', `tslaunch-col-${c.key}`));
    return tr;
  }

  private fillRow(tr: HTMLTableRowElement, r: RankRow, now: number): void {
    tr.dataset.state = r.state;
    const cells = tr.cells;
    cells[0].textContent = String(r.rank);
    cells[1].textContent = String(r.node);
    cells[2].textContent = r.pid === null ? '–' : String(r.pid);
    cells[3].textContent = r.state;
    cells[3].className = `tslaunch-col-state tslaunch-state-${r.state}`;
    cells[4].textContent = formatDuration(rankElapsed(r, now));
    cells[5].textContent = String(r.restarts);
    cells[6].textContent = formatExit(r);
    cells[7].textContent = r.lastLine;
    cells[7].title = r.lastLine;
  }

  private renderSelection(): void {
    const selected = this.filter.activeRank;
    for (const [rank, tr] of this.rows) {
      const on = rank === selected;
      tr.classList.toggle('tslaunch-selected', on);
      tr.setAttribute('aria-selected', String(on));
    }
    this.filterNote.hidden = selected === null;
    this.filterNote.textContent = selected === null ? '' : `Log: rank ${selected} only. Click the row again to show every rank.`;
  }

  private onRowClick(ev: Event): void {
    const tr = (ev.target as HTMLElement | null)?.closest('tr.tslaunch-rank') as HTMLTableRowElement | null;
    if (!tr || tr.dataset.rank === undefined) return;
    const rank = Number(tr.dataset.rank);
    this.filter.show(this.filter.activeRank === rank ? null : rank);
    this.renderSelection();
  }

  private async stop(): Promise<void> {
    if (!this.model || isEnded(this.model.state)) return;
    const kernel = sessionContextFor(this.node)?.session?.kernel;
    if (!kernel) {
      this.stopButton.title = 'No running kernel found for this output';
      return;
    }
    this.stopping = true;
    this.render();
    // If the launch does not end, offer the button again after a while.
    window.setTimeout(() => {
      if (this.stopping && !this.isDisposed) {
        this.stopping = false;
        this.render();
      }
    }, STOP_RETRY_MS);
    try {
      await kernel.interrupt();
    } catch (e) {
      this.stopping = false;
      this.stopButton.title = `Interrupting the kernel failed: ${String(e)}`;
      this.render();
    }
  }
}
