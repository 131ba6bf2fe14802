// The JupyterLab application, kept by the plugin (plugin.ts) for the renderers (mime.ts), which
// need it to find the kernel of the notebook or console that shows them. Typed structurally so that
// the extension needs none of @jupyterlab/application at run time.
import type { Widget } from '@lumino/widgets';

/** What the Stop button needs of a notebook panel's (or console's) session context. */
export interface SessionContextLike {
  session?: { kernel?: { interrupt(): Promise<void> } | null } | null;
}

export interface ShellLike {
  currentWidget?: Widget | null;
  widgets(area?: string): Iterable<Widget>;
}

export interface AppLike {
  shell: ShellLike;
}

let app: AppLike | null = null;

export function setApp(a: AppLike): void {
  app = a;
}

function sessionContextOf(w: Widget | null | undefined): SessionContextLike | null {
  const ctx = (w as unknown as { sessionContext?: SessionContextLike } | null | undefined)?.sessionContext;
  return ctx && typeof ctx === 'object' ? ctx : null;
}

/**
 * The session context of the shell widget (notebook panel, console) that contains `node`: first the
 * current widget, then every widget of the main area.
 */
export function sessionContextFor(node: HTMLElement): SessionContextLike | null {
  if (!app) return null;
  const current = app.shell.currentWidget;
  if (current && current.node.contains(node)) {
    const ctx = sessionContextOf(current);
    if (ctx) return ctx;
  }
  for (const w of app.shell.widgets('main')) {
    if (w.node.contains(node)) {
      const ctx = sessionContextOf(w);
      if (ctx) return ctx;
    }
  }
  return null;
}
