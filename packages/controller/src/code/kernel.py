"""ScaiBunker's Python kernel: one process per code context, state kept between executions.

Requests arrive on stdin, one JSON object per line: {"id": "...", "code": "...", "env": {...}?}
(`env`: environment variables set for that execution only). Each
execution answers on stdout with JSON lines carrying the request's id, in order:
  {"id", "type": "stdout" | "stderr", "text"}       output of the code, as it is written
  {"id", "type": "result", "text", "html"?, "png"?, "svg"?, "markdown"?, "json"?}
                                                     the value of a trailing expression
  {"id", "type": "error", "name", "value", "traceback"}
  {"id", "type": "end_of_execution", "execution_count"}
SIGINT interrupts the running execution (KeyboardInterrupt); the kernel stays up.
"""
import ast
import base64
import json
import linecache
import os
import signal
import sys
import traceback

_out = sys.stdout
_namespace = {"__name__": "__main__", "__builtins__": __builtins__}
_count = 0


def _emit(obj):
    _out.write(json.dumps(obj) + "\n")
    _out.flush()


class _Stream:
    """sys.stdout / sys.stderr while code runs: every write becomes one event."""

    def __init__(self, request_id, name):
        self._id = request_id
        self._name = name

    def write(self, text):
        if not isinstance(text, str):
            text = str(text)
        if text:
            _emit({"id": self._id, "type": self._name, "text": text})
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"


def _representations(value):
    data = {"text": repr(value)}
    for method, key in (
        ("_repr_html_", "html"),
        ("_repr_markdown_", "markdown"),
        ("_repr_svg_", "svg"),
        ("_repr_json_", "json"),
        ("_repr_png_", "png"),
    ):
        fn = getattr(value, method, None)
        if not callable(fn):
            continue
        try:
            rendered = fn()
        except Exception:  # a broken repr method is not the user's error
            continue
        if rendered is None:
            continue
        if key == "png" and isinstance(rendered, (bytes, bytearray)):
            rendered = base64.b64encode(rendered).decode("ascii")
        data[key] = rendered
    return data


def _traceback(e):
    """The traceback from the user's code on (the kernel's own frames left out)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    if tb is None:
        return "".join(traceback.format_exception_only(type(e), e))
    return "".join(traceback.format_exception(type(e), e, tb))


def _run(request_id, code, env=None):
    global _count
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        _execute(request_id, code)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _execute(request_id, code):
    global _count
    _count += 1
    _namespace["_execution_count"] = _count
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream(request_id, "stdout"), _Stream(request_id, "stderr")
    # Tracebacks quote the cell's lines, as they would a file's.
    linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
    try:
        tree = ast.parse(code, "<cell>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), _namespace)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), _namespace)
            if value is not None:
                _namespace["_"] = value
                _emit({"id": request_id, "type": "result", **_representations(value)})
    except BaseException as e:  # KeyboardInterrupt and SystemExit included: the kernel lives on
        _emit({"id": request_id, "type": "error", "name": type(e).__name__, "value": str(e), "traceback": _traceback(e)})
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        _emit({"id": request_id, "type": "end_of_execution", "execution_count": _count})


def main():
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _emit({"type": "ready", "python": sys.version.split()[0]})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
            request_id, code = str(request["id"]), str(request["code"])
            env = {str(k): str(v) for k, v in (request.get("env") or {}).items()}
        except Exception as e:
            _emit({"type": "protocol_error", "value": str(e)})
            continue
        _run(request_id, code, env)


if __name__ == "__main__":
    main()
