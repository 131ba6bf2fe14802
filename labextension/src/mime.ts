// The mime renderer extension for LAUNCH_VIEW_MIME.
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { LAUNCH_VIEW_MIME } from './model';
import { LaunchView } from './view';

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [LAUNCH_VIEW_MIME],
  createRenderer: (options) => new LaunchView(options),
};

const extension: IRenderMime.IExtension = {
  id: '@tslaunch/labextension:launch-view',
  description: 'A live view of a tslaunch %%launch: ranks, state, elapsed, exit codes.',
  rendererFactory,
  // Before text/plain (and everything else) whenever the kernel sends a launch view.
  rank: 0,
  dataType: 'json',
};

export default extension;
