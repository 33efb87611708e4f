// The one place that imports the vendored Preact + htm build (see vendor/VENDORED.md).
export {
  html,
  render,
  useState,
  useEffect,
  useRef,
  useMemo,
  useCallback,
} from "../vendor/preact-htm-standalone.module.js";
