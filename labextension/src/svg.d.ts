// SVG files are bundled as text (the builder's asset/source rule for .svg).
declare module '*.svg' {
  const value: string;
  export default value;
}
