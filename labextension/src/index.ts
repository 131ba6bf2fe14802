export * from './model';
export { LaunchView } from './view';
export { LogFilter, linesOfRank, ownerOf } from './log-filter';
export { rendererFactory } from './mime';
export { default as mimeExtension } from './mime';
export { default as plugin } from './plugin';
