// The application plugin: it only hands the app to the renderers (see app-ref.ts).
import { setApp, type AppLike } from './app-ref';

const plugin = {
  id: '@tslaunch/labextension:app',
  description: 'Gives the tslaunch launch view access to the notebook kernels (for its Stop button).',
  autoStart: true,
  activate: (app: AppLike): void => {
    setApp(app);
  },
};

export default plugin;
