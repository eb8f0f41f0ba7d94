// Programming: a CodeMirror editor with the robot's program, upload (sha256 and warnings
// shown), and pylint's messages (broker.lint) as editor markers.
import {
  EditorState, EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, defaultKeymap, history, historyKeymap, indentWithTab, syntaxHighlighting,
  defaultHighlightStyle, indentOnInput, bracketMatching, indentUnit, python, lintGutter,
  setDiagnostics,
} from "./vendor/vendor.js";

const SEVERITY = { fatal: "error", error: "error", warning: "warning", convention: "info",
  refactor: "info", info: "info" };

export class Program {
  constructor(parent) {
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: "",
        extensions: [
          lineNumbers(), highlightActiveLineGutter(), highlightActiveLine(), drawSelection(),
          history(), indentOnInput(), bracketMatching(), indentUnit.of("    "),
          syntaxHighlighting(defaultHighlightStyle), python(), lintGutter(),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorView.theme({ "&": { height: "420px" }, ".cm-scroller": { overflow: "auto" } }),
        ],
      }),
    });
  }

  get source() {
    return this.view.state.doc.toString();
  }

  set source(text) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text } });
    this.mark([]);
  }

  // pylint's messages (JSON form: line, column, endLine, type, symbol, message) as markers.
  mark(messages) {
    const doc = this.view.state.doc;
    const diagnostics = [];
    for (const m of messages) {
      const lineNo = Math.min(Math.max(Number(m.line) || 1, 1), doc.lines);
      const line = doc.line(lineNo);
      const from = Math.min(line.from + (Number(m.column) || 0), line.to);
      let to = line.to;
      if (m.endLine === m.line && Number.isInteger(m.endColumn)) {
        to = Math.min(line.from + m.endColumn, line.to);
      }
      diagnostics.push({
        from, to: Math.max(to, from), severity: SEVERITY[m.type] || "warning",
        message: `${m.message} (${m.symbol || m["message-id"] || m.type}, line ${lineNo})`,
        source: "pylint",
      });
    }
    this.view.dispatch(setDiagnostics(this.view.state, diagnostics));
    return diagnostics;
  }

  goto(lineNo) {
    const doc = this.view.state.doc;
    const line = doc.line(Math.min(Math.max(lineNo, 1), doc.lines));
    this.view.dispatch({ selection: { anchor: line.from, head: line.to }, scrollIntoView: true });
    this.view.focus();
  }
}
