// Everything the driver station page imports from npm, in one ES module (vendor.js).
export { default as mqtt } from "mqtt";
export { Encoder, decode, encode } from "cbor-x";
export { default as uPlot } from "uplot";
export { EditorState } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, indentUnit,
} from "@codemirror/language";
export { python } from "@codemirror/lang-python";
export { linter, lintGutter, setDiagnostics, forEachDiagnostic } from "@codemirror/lint";
