#!/usr/bin/env python3
"""Generate docs/spec-coverage.md: which tests cite which MQTT normative statements.

Run from the repository root:

    python3 docs/gen-spec-coverage.py            # (re)write docs/spec-coverage.md
    python3 docs/gen-spec-coverage.py --check    # exit 1 if docs/spec-coverage.md is stale

Exit status: 0 on success, 1 when --check finds the page out of date, 2 on bad
input (missing spec file, spec-scope.tsv not matching the spec rows, ...).

Inputs:
  * ../shared/spec/normative-statements.tsv (relative to the repo root; override
    with --spec PATH): version, id, section, statement for every numbered
    normative statement of MQTT 5.0 and 3.1.1;
  * docs/spec-scope.tsv: version, id, scope (codec, flow, broker, client,
    transport, conformance), one row per statement, in the same order;
  * every *.rs file under crates/ and fuzz/, and every *.py, *.js, *.sh file
    under tests/, scanned for ids matching MQTT-<n>(.<n>)*-<n>.

Attribution of a citation to a test:
  * A citation in a comment block directly above a function (only comments,
    attributes or decorators between them, no blank line; Rust inner docs
    `//!` excluded) belongs to that function; otherwise
    it belongs to the innermost function whose body contains it.
  * In Rust files outside a tests/ directory and outside fuzz/, that function
    must be a test: marked #[test] (or #[tokio::test], #[rstest],
    #[test_case], #[quickcheck], ...) or declared inside a proptest! block.
    Citations elsewhere (module docs, implementation comments) are not counted.
  * In files under a tests/ directory or under fuzz/, every function counts,
    and a citation outside any function counts for the file as a whole.
  * Version: a citation covers the id in every version that defines it, unless
    the citing line or the name of the function it is attributed to mentions a
    version (v5, 5.0, mqtt5 ... or v311, v3, 3.1.1, v3_1_1, mqtt311 ...); then
    it covers only the version(s) mentioned.

Standard library only. Output is deterministic (no dates, sorted as in the TSV).
"""

import argparse
import csv
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SPEC = os.path.join("..", "shared", "spec", "normative-statements.tsv")
SCOPE_FILE = os.path.join("docs", "spec-scope.tsv")
OUTPUT = os.path.join("docs", "spec-coverage.md")
SCRIPT = "docs/gen-spec-coverage.py"

VERSIONS = ["5.0", "3.1.1"]
SCOPES = ["codec", "flow", "broker", "client", "transport", "conformance"]
IMPLEMENTED_SCOPES = {"codec", "flow"}
NA_TEXT = {
    "broker": "n/a here (broker behaviour)",
    "client": "n/a here (client behaviour)",
    "transport": "n/a here (transport)",
    "conformance": "n/a here (conformance clause)",
}

ID_RE = re.compile(r"MQTT-\d+(?:\.\d+)*-\d+")
# Spellings printed in the spec bodies that differ from the Appendix B id.
ID_ALIASES = {"MQTT-4.2-1": "MQTT-4.2.0-1", "MQTT-3.3.1.-1": "MQTT-3.3.1-1"}

# Version markers; '_' counts as a separator so `decode_v5_connect` matches.
_B = r"(?:^|(?<=[^A-Za-z0-9.\u00a7]))"  # not preceded by a letter, digit, '.' or '§'
_E = r"(?=$|[^A-Za-z0-9.])"
V5_RE = re.compile(_B + r"(?:v5|v5\.0|5\.0|mqtt-?v?5|mqttv5)" + _E, re.I)
V311_RE = re.compile(
    _B + r"(?:v311|v3|v3_1_1|v3\.1\.1|3\.1\.1|mqtt-?v?311|mqtt-?v?3_1_1)" + _E, re.I
)

SKIP_DIRS = {"target", "node_modules", "__pycache__"}
RUST_TEST_ATTR = re.compile(
    r"#\[\s*(?:[\w:]+::)?(?:test|rstest|test_case|quickcheck|test_log::test)\b"
)


# --------------------------------------------------------------------------
# Reading the TSV inputs


def die(message):
    """Input errors exit with 2, so --check's 1 always means "out of date"."""
    print(message, file=sys.stderr)
    sys.exit(2)


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        die(f"error: {path} is empty")
    header, body = rows[0], [r for r in rows[1:] if r]
    for n, r in enumerate(body, start=2):
        if len(r) < len(header):
            die(f"error: {path} line {n}: {len(r)} fields, expected {len(header)}")
    return header, body


def load(spec_path):
    header, spec_rows = read_tsv(spec_path)
    if header[:3] != ["version", "id", "section"]:
        die(f"error: unexpected header in {spec_path}: {header}")
    sheader, scope_rows = read_tsv(os.path.join(ROOT, SCOPE_FILE))
    if sheader != ["version", "id", "scope"]:
        die(f"error: unexpected header in {SCOPE_FILE}: {sheader}")
    if len(scope_rows) != len(spec_rows):
        die(
            f"error: {SCOPE_FILE} has {len(scope_rows)} rows, "
            f"{spec_path} has {len(spec_rows)}"
        )
    statements = []
    for n, (s, c) in enumerate(zip(spec_rows, scope_rows), start=2):
        if (s[0], s[1]) != (c[0], c[1]):
            die(
                f"error: {SCOPE_FILE} line {n} is {c[0]} {c[1]}, "
                f"expected {s[0]} {s[1]} (same order as the spec TSV)"
            )
        if c[2] not in SCOPES:
            die(f"error: {SCOPE_FILE} line {n}: unknown scope {c[2]!r}")
        if s[0] not in VERSIONS:
            die(f"error: {spec_path}: unknown version {s[0]!r}")
        statements.append({"version": s[0], "id": s[1], "section": s[2], "scope": c[2]})
    return statements


# --------------------------------------------------------------------------
# Scanning source files


def source_files():
    """Yield repo-relative posix paths of the files to scan, sorted."""
    wanted = [("crates", (".rs",)), ("fuzz", (".rs",)), ("tests", (".py", ".js", ".sh"))]
    found = []
    for top, exts in wanted:
        base = os.path.join(ROOT, top)
        if not os.path.isdir(base):
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
            )
            for name in sorted(filenames):
                if name.endswith(exts):
                    rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                    found.append(rel.replace(os.sep, "/"))
    return sorted(set(found))


def blank_out(text, lang):
    """Return text with comments and string/char literals replaced by spaces
    (newlines kept), so braces can be counted on what is left."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    line_comment = {"rust": "//", "js": "//", "sh": "#", "py": "#"}[lang]
    block = lang in ("rust", "js")
    quotes = {"rust": '"', "js": "\"'`", "sh": "\"'", "py": "\"'"}[lang]
    char_re = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'")
    raw_re = re.compile(r'b?r(#*)"')
    while i < n:
        c = text[i]
        if text.startswith(line_comment, i) and not (
            lang == "sh" and i > 0 and text[i - 1] in "${"
        ):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif block and text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if lang == "rust" and text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif lang == "rust" and c in "br" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) and raw_re.match(text, i):
            m = raw_re.match(text, i)
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            blank(i, j)
            i = j
        elif lang == "rust" and c == "'":
            m = char_re.match(text, i)
            if m:
                blank(i, m.end())
                i = m.end()
            else:
                i += 1  # a lifetime
        elif c in quotes:
            triple = lang == "py" and text.startswith(c * 3, i)
            delim = c * 3 if triple else c
            j = i + len(delim)
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(delim, j):
                    j += len(delim)
                    break
                if text[j] == "\n" and not triple and lang in ("py",):
                    break
                j += 1
            blank(i, min(j, n))
            i = j
        else:
            i += 1
    return "".join(out)


FN_PATTERNS = {
    "rust": re.compile(
        r"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?(?:(?:const|async|unsafe|extern\s+\"[^\"]*\")\s+)*fn\s+([A-Za-z_]\w*)"
    ),
    "py": re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)"),
    "js": re.compile(
        r"^\s*(?:(?:export\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)"
        r"|(?:test|it|describe)(?:\.\w+)?\s*\(\s*(['\"`])(.*?)\2)"
    ),
    "sh": re.compile(r"^\s*(?:function\s+([A-Za-z_][\w:-]*)(?:\s*\(\s*\))?|([A-Za-z_][\w:-]*)\s*\(\s*\))\s*\{?"),
}


def lang_of(path):
    return {".rs": "rust", ".py": "py", ".js": "js", ".sh": "sh"}[os.path.splitext(path)[1]]


def is_comment(line, lang):
    s = line.strip()
    if lang in ("rust", "js"):
        return s.startswith(("//", "/*")) or re.match(r"\*(?:\s|/|$)", s) is not None
    return s.startswith("#")


def is_attr(line, lang):
    """An attribute (Rust) or decorator (Python) line that is not itself a
    function declaration such as `#[test] fn x() {}`."""
    s = line.strip()
    if lang == "rust":
        return s.startswith("#[") and not FN_PATTERNS["rust"].match(line)
    if lang == "py":
        return s.startswith("@")
    return False


def is_comment_or_attr(line, lang):
    return is_comment(line, lang) or is_attr(line, lang)


def brace_end(code_lines, start):
    """Index of the line closing the block opened at or after line `start`,
    or None if a ';' ends the item first or the braces never balance."""
    depth, opened, nest = 0, False, 0
    for k in range(start, len(code_lines)):
        for ch in code_lines[k]:
            if ch == "{":
                depth, opened = depth + 1, True
            elif ch == "}":
                depth -= 1
                if opened and depth == 0:
                    return k
            elif not opened and ch in "([":
                nest += 1
            elif not opened and ch in ")]":
                nest -= 1
            elif ch == ";" and not opened and nest <= 0:
                return k
    return None


def functions(path, lines, lang):
    """List of dicts: name, start, end (0-based inclusive line indexes), test."""
    code = blank_out("\n".join(lines), lang).split("\n")
    pat = FN_PATTERNS[lang]
    fns = []
    for k, line in enumerate(lines):
        m = pat.match(code[k]) if lang != "js" else pat.match(line)
        if not m:
            continue
        if lang == "py":
            name, indent = m.group(2), len(m.group(1).expandtabs())
            end = k
            for j in range(k + 1, len(lines)):
                raw, c = lines[j], code[j]
                if not raw.strip():
                    continue
                if raw.strip().startswith("#"):
                    # A comment indented like the body belongs to it; one at
                    # the def's level neither ends the body nor extends it.
                    if len(raw) - len(raw.lstrip()) > indent:
                        end = j
                    continue
                if not c.strip():
                    end = j  # inside a string literal that started in the body
                    continue
                if len(c) - len(c.lstrip()) <= indent:
                    break
                end = j
            fns.append({"name": name, "start": k, "end": end})
            continue
        if lang == "rust":
            name = m.group(1)
        elif lang == "js":
            name = m.group(1) or m.group(3)
        else:
            name = m.group(1) or m.group(2)
            if name in ("if", "while", "for", "until", "case", "select"):
                continue
        end = brace_end(code, k)
        fns.append({"name": name, "start": k, "end": end})
    # Unbalanced braces: fall back to "until the next function starts".
    for idx, f in enumerate(fns):
        if f["end"] is None:
            nxt = fns[idx + 1]["start"] - 1 if idx + 1 < len(fns) else len(lines) - 1
            f["end"] = max(f["start"], nxt)
    if lang == "rust":
        proptest_ranges = []
        for k, line in enumerate(code):
            if re.search(r"\bproptest!\s*[{(\[]", line):
                e = brace_end(code, k)
                proptest_ranges.append((k, e if e is not None else len(lines) - 1))
        for f in fns:
            attrs = []
            j = f["start"] - 1
            while j >= 0 and not FN_PATTERNS["rust"].match(code[j]) and (
                is_comment_or_attr(lines[j], lang) or lines[j].strip().endswith(")]")
            ):
                attrs.append(lines[j])
                j -= 1
            attrs.append(lines[f["start"]])
            f["test"] = bool(RUST_TEST_ATTR.search("\n".join(attrs))) or any(
                a <= f["start"] <= b for a, b in proptest_ranges
            )
    else:
        for f in fns:
            f["test"] = True
    return fns


def is_test_file(path):
    parts = path.split("/")
    return parts[0] in ("tests", "fuzz") or "tests" in parts[:-1]


def owner_of(k, lines, fns, lang):
    """Function a citation on line k belongs to, or None."""
    inner_doc = lang == "rust" and lines[k].strip().startswith(("//!", "/*!"))
    if is_comment(lines[k], lang) and not inner_doc:
        j = k + 1
        while j < len(lines) and is_comment_or_attr(lines[j], lang):
            j += 1
        for f in fns:
            if f["start"] == j:
                return f
    inner = None
    for f in fns:
        if f["start"] <= k <= f["end"]:
            if inner is None or f["start"] >= inner["start"]:
                inner = f
    return inner


def versions_mentioned(text):
    text = ID_RE.sub(" ", text)
    found = set()
    if V5_RE.search(text):
        found.add("5.0")
    if V311_RE.search(text):
        found.add("3.1.1")
    return found


def scan(defined):
    """Return ({(version, id): set of (path, name)}, problems, counts)."""
    cover, problems = {}, []
    counts = {"test": 0, "other": 0}
    for path in source_files():
        with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        if not any(ID_RE.search(l) for l in lines):
            continue
        lang = lang_of(path)
        fns = functions(path, lines, lang)
        test_file = is_test_file(path)
        for k, line in enumerate(lines):
            for m in ID_RE.finditer(line):
                ident = ID_ALIASES.get(m.group(0), m.group(0))
                f = owner_of(k, lines, fns, lang)
                if f is not None and (test_file or f["test"]):
                    name = f["name"]
                elif f is None and test_file:
                    name = None
                else:
                    counts["other"] += 1
                    continue
                counts["test"] += 1
                where = f"{path}:{k + 1}"
                have = {v for v in VERSIONS if (v, ident) in defined}
                if not have:
                    problems.append(f"`{ident}` cited at `{where}` is not a normative statement id")
                    continue
                said = versions_mentioned(line) | versions_mentioned(name or "")
                targets = (said & have) if said else have
                if said and not targets:
                    problems.append(
                        f"`{ident}` cited at `{where}` for MQTT "
                        f"{' and '.join(sorted(said))}, which has no such id"
                    )
                    continue
                for v in targets:
                    cover.setdefault((v, ident), set()).add((path, name))
    return cover, problems, counts


# --------------------------------------------------------------------------
# Rendering


def md_cell(text):
    return text.replace("|", "\\|").replace("`", "\\`")


def render(statements, cover, problems, spec_arg):
    out = []
    w = out.append
    w("# MQTT specification coverage")
    w("")
    w(f"<!-- Generated by {SCRIPT}. Do not edit by hand. -->")
    w("")
    w("Every numbered normative statement (`[MQTT-x.y.z-n]`) of MQTT 5.0 and "
      "MQTT 3.1.1, with the layer that must enforce it and the tests that cite it.")
    w("")
    w("How this page is made:")
    w("")
    w(f"* Generated by `python3 {SCRIPT}` run from the repository root; "
      f"`python3 {SCRIPT} --check` exits 1 when this page is out of date "
      "(2 on bad input, e.g. `spec-scope.tsv` not matching the statements).")
    w(f"* Statements come from `{spec_arg}` (option `--spec PATH`); the layer of "
      f"each statement comes from [`spec-scope.tsv`](spec-scope.tsv): `codec` "
      "(packet format, encoding, topic syntax and matching), `flow` (per-connection "
      "state machine), `broker` (server-only behaviour), `client` (client "
      "application behaviour), `transport` (network, WebSocket), `conformance` "
      "(chapter 7 clauses).")
    w("* Scanned: `*.rs` under `crates/` and `fuzz/`, `*.py`, `*.js`, `*.sh` under "
      "`tests/`, for ids matching `MQTT-\\d+(\\.\\d+)*-\\d+`.")
    w("* A test covers an id when the id appears inside the test function or in the "
      "comment block directly above it. In Rust sources outside `tests/` and `fuzz/` "
      "only `#[test]` functions (including `#[tokio::test]` and similar) and "
      "`proptest!` functions count; citations in module docs or non-test code are "
      "ignored. In files under `tests/` or `fuzz/` every function counts, and a "
      "citation outside any function counts for the whole file.")
    w("* **Versions.** Ids are per version: `MQTT-3.1.2-4` means different things in "
      "5.0 and 3.1.1. A citation covers the id in every version that defines it, "
      "unless the citing line or the test function's name mentions a version "
      "(`v5`, `5.0`, `mqtt5`; `v311`, `v3`, `v3_1_1`, `3.1.1`, `mqtt311`): then it "
      "covers only that version. Write e.g. `// MQTT-3.1.2-4 (v5)` or name the test "
      "`..._v311` to be specific.")
    w("* *not yet*: a `codec` or `flow` statement no test cites. *n/a here*: a "
      "statement for a layer this library does not implement yet, with no citing "
      "test (tests citing one are listed anyway).")
    w("")
    w("## Summary")
    w("")
    w("| version | scope | total | covered | not yet | n/a |")
    w("| --- | --- | ---: | ---: | ---: | ---: |")
    for v in VERSIONS:
        tot = [0, 0, 0, 0]
        for s in SCOPES:
            rows = [st for st in statements if st["version"] == v and st["scope"] == s]
            if not rows:
                continue
            cov = sum(1 for st in rows if (v, st["id"]) in cover)
            rest = len(rows) - cov
            notyet = rest if s in IMPLEMENTED_SCOPES else 0
            na = 0 if s in IMPLEMENTED_SCOPES else rest
            for i, x in enumerate((len(rows), cov, notyet, na)):
                tot[i] += x
            w(f"| {v} | {s} | {len(rows)} | {cov} | {notyet} | {na} |")
        w(f"| **{v}** | **all** | **{tot[0]}** | **{tot[1]}** | **{tot[2]}** | **{tot[3]}** |")
    w("")
    for v in VERSIONS:
        w(f"## MQTT {v}")
        w("")
        w("| id | section | scope | covered by |")
        w("| --- | --- | --- | --- |")
        for st in statements:
            if st["version"] != v:
                continue
            tests = sorted(cover.get((v, st["id"]), ()), key=lambda t: (t[0], t[1] or ""))
            if tests:
                cell = "<br>".join(
                    f"[`{p}::{n}`](../{p})" if n else f"[`{p}`](../{p})" for p, n in tests
                )
            elif st["scope"] in IMPLEMENTED_SCOPES:
                cell = "not yet"
            else:
                cell = NA_TEXT[st["scope"]]
            w(f"| {st['id']} | {md_cell(st['section'])} | {st['scope']} | {cell} |")
        w("")
    if problems:
        w("## Citations that match no statement")
        w("")
        for p in sorted(set(problems)):
            w(f"* {p}")
        w("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 if {OUTPUT} is not up to date; write nothing")
    ap.add_argument("--spec", metavar="PATH",
                    help=f"normative-statements.tsv (default: {DEFAULT_SPEC} from the repo root)")
    args = ap.parse_args()
    # The page always names the default path so that it does not depend on
    # where --spec pointed.
    spec_arg = DEFAULT_SPEC.replace(os.sep, "/")
    spec_path = os.path.abspath(args.spec) if args.spec else os.path.join(ROOT, DEFAULT_SPEC)
    if not os.path.isfile(spec_path):
        die(f"error: {spec_path} not found (use --spec PATH)")
    statements = load(spec_path)
    defined = {(st["version"], st["id"]) for st in statements}
    cover, problems, counts = scan(defined)
    text = render(statements, cover, problems, spec_arg) + "\n"
    out_path = os.path.join(ROOT, OUTPUT)
    if args.check:
        try:
            with open(out_path, encoding="utf-8", newline="") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{OUTPUT} is out of date; run: python3 {SCRIPT}", file=sys.stderr)
            return 1
        print(f"{OUTPUT} is up to date")
        return 0
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    covered = len(cover)
    print(
        f"wrote {OUTPUT}: {counts['test']} citations in tests "
        f"({counts['other']} elsewhere ignored), {covered} version/id pairs covered"
        + (f", {len(set(problems))} unknown citations" if problems else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
