#!/usr/bin/env python3
"""Documents and comments cite only what the repository holds.

Checks, over the source tree (build trees and .git left out):
- every repository path named in a Markdown file, a man page source, a
  debian/ text, or a comment of the code and scripts (src/..., doc/...,
  tests/..., cli/..., include/..., examples/..., debian/..., proto/...,
  cmake/...) exists; a "*" in it is a glob that must match, and a word in
  capitals (tests/test_NAME.c) stands for any name;
- every Markdown file named without a folder (NOTES.md) is a file of the
  repository somewhere, and nothing
  names the build machine's /work tree, which is no part of it;
- every relative Markdown link, and its #anchor, leads to a file and a
  heading that exist, and so does every section cited as
  doc/FILE.md, "Heading" (a citation may run over two comment lines);
- doc/hacking.md names every file of src/ (its source layout);
- every line of debian/*.docs and debian/*.examples is a file;
- README.md has at most 250 lines (the rest belongs in doc/).
Exits 1 and names every mistake as FILE:LINE.

Usage: check_docs.py SOURCE_DIR | --self-test
"""
import ast
import glob
import io
import os
import re
import sys
import tokenize

README_MAX_LINES = 250

ROOTS = ("src", "doc", "tests", "cli", "include", "examples", "debian",
         "proto", "cmake")
# A path starts at a word boundary: "/usr/share/doc/x" or "$dir/tests/x"
# name no file of the repository.
REPO_PATH = re.compile(r"(?<![\w./$~{}-])((?:%s)/[\w.*/+-]*)" %
                       "|".join(ROOTS))
BARE_MD = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")
OUTSIDE = re.compile(r"(?<![\w.])/work/\S*")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]+")
SECTION_REF = re.compile(r'(doc/[\w-]+\.md),?\s*"([^"]+)"')
COMMENT_MARK = re.compile(r"^\s*(?:/\*+|\*+(?!/)|//+|#+|;)?\s?")

# What a build makes in the tree: comments may name it.
GENERATED = ("debian/tmp", "debian/libnatter0.symbols.new")

SKIP_DIRS = {".git", "corpus", "node_modules", "__pycache__"}
C_LIKE = (".c", ".h", ".cpp", ".proto")
HASH_COMMENTS = (".sh", ".cmake", ".in", ".service", ".conf",
                 ".bash-completion")
HASH_COMMENT_NAMES = ("CMakeLists.txt", "dev", "run", "rules",
                      ".gitignore", ".clang-format")
WHOLE_TEXT = (".md", ".scd")
WHOLE_TEXT_NAMES = ("README.source", "changelog", "control")


def walk(top):
    """Yields the repository's files as paths relative to |top|."""
    for dirpath, dirs, names in os.walk(top):
        rel_dir = os.path.relpath(dirpath, top)
        dirs[:] = sorted(
            d for d in dirs
            if d not in SKIP_DIRS and not (
                rel_dir == "." and (d.startswith(("build", "obj-", "out")) or
                                    (d.startswith(".") and d != ".ci"))))
        for name in sorted(names):
            yield os.path.normpath(os.path.join(rel_dir, name))


def c_comments(text):
    """Yields (line, text) of every comment of C, C++ or protobuf source,
    skipping string and character literals."""
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            body = text[i:end]
            for k, part in enumerate(body.split("\n")):
                yield line + k, part
            line += body.count("\n")
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            yield line, text[i:end]
            i = end
        elif c in "\"'":
            i += 1
            while i < n and text[i] != c and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
            i += 1
        else:
            i += 1


def hash_comments(text):
    """Yields (line, text) of every '#' comment of a shell, Python, CMake or
    configuration file: a '#' at the start or after a blank."""
    for lineno, line in enumerate(text.split("\n"), 1):
        m = re.search(r"(?:^|\s)#(?![!{])(.*)", line)
        if m:
            yield lineno, m.group(1)


def python_comments(text):
    """Yields (line, text) of every comment and docstring of Python code."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.string
        tree = ast.parse(text)
    except (SyntaxError, tokenize.TokenError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef,
                             ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc and node.body:
                first = node.body[0].lineno
                for k, part in enumerate(doc.split("\n")):
                    yield first + k, part


def prose(rel, text):
    """The text of |rel| that is prose for people: whole documents, and the
    comments of code. Yields (line, text)."""
    name = os.path.basename(rel)
    if name.endswith(WHOLE_TEXT) or name in WHOLE_TEXT_NAMES:
        yield from enumerate(text.split("\n"), 1)
    elif name.endswith(C_LIKE):
        yield from c_comments(text)
    elif name.endswith(".py"):
        yield from python_comments(text)
    elif name.endswith(HASH_COMMENTS) or name in HASH_COMMENT_NAMES:
        yield from hash_comments(text)


def path_exists(top, path):
    path = path.rstrip(".,:;")
    if not path or path.endswith("/..") or path in GENERATED:
        return True
    if os.path.exists(os.path.join(top, path)):
        return True
    pattern = PLACEHOLDER.sub("*", path)
    if "*" in pattern:
        return bool(glob.glob(os.path.join(top, pattern)))
    return False


def slug(heading):
    """The anchor GitHub gives a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def headings(path):
    """The headings of a Markdown file, outside code blocks."""
    fence = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
            m = None if fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                yield m.group(1)


def anchors(path):
    found, seen = set(), {}
    for heading in headings(path):
        s = slug(heading)
        k = seen.get(s, 0)
        seen[s] = k + 1
        found.add(s if k == 0 else f"{s}-{k}")
    return found


def check_sections(top, rel, lines, errors):
    """Citations of a section, doc/FILE.md, "Heading", in the prose of one
    file; |lines| are its (line, text) pairs, joined so that a citation may
    span a line break in a comment."""
    text, starts = "", []
    for lineno, line in lines:
        line = COMMENT_MARK.sub("", line, count=1).replace("*/", "")
        starts.append((len(text), lineno))
        text += line.strip() + " "
    for m in SECTION_REF.finditer(text):
        path, section = m.group(1), " ".join(m.group(2).split())
        lineno = max(n for off, n in starts if off <= m.start())
        full = os.path.join(top, path)
        if not os.path.exists(full):
            continue  # reported as a missing path
        names = {h.replace("`", "").lower() for h in headings(full)}
        if section.lower() not in names:
            errors.append(f'{rel}:{lineno}: {path}, "{section}": no such '
                          "section")


def check_links(top, rel, lineno, line, errors):
    for target in MD_LINK.findall(line):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(rel),
                                              file_part or
                                              os.path.basename(rel)))
        where = f"{rel}:{lineno}: link {target}"
        if not os.path.exists(os.path.join(top, dest)):
            errors.append(f"{where}: no file {dest}")
        elif anchor and dest.endswith(".md") and \
                anchor not in anchors(os.path.join(top, dest)):
            errors.append(f"{where}: {dest} has no heading #{anchor}")


def check_tree(top):
    errors = []
    files = list(walk(top))
    md_names = {os.path.basename(f) for f in files if f.endswith(".md")}
    for rel in files:
        try:
            with open(os.path.join(top, rel), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        in_fence = False
        lines = list(prose(rel, text))
        check_sections(top, rel, lines, errors)
        for lineno, line in lines:
            if rel.endswith(".md"):
                if line.startswith("```"):
                    in_fence = not in_fence
                if not in_fence:
                    check_links(top, rel, lineno, line, errors)
            for path in REPO_PATH.findall(line):
                if not path_exists(top, path):
                    errors.append(f"{rel}:{lineno}: {path.rstrip('.,:;')}: "
                                  "no such file in the repository")
            for name in BARE_MD.findall(line):
                if name not in md_names:
                    errors.append(f"{rel}:{lineno}: {name}: no such file "
                                  "in the repository")
            for path in OUTSIDE.findall(line):
                errors.append(f"{rel}:{lineno}: {path}: outside the "
                              "repository")
        if rel.startswith("debian" + os.sep) and \
                rel.endswith((".docs", ".examples")):
            for lineno, line in enumerate(text.split("\n"), 1):
                line = line.strip()
                if line and not line.startswith("#") and \
                        not glob.glob(os.path.join(top, line)):
                    errors.append(f"{rel}:{lineno}: {line}: no such file")
    hacking = os.path.join(top, "doc", "hacking.md")
    if os.path.exists(hacking):
        with open(hacking, encoding="utf-8") as f:
            layout = set(re.findall(r"[\w.-]+", f.read()))
        for rel in files:
            parts = rel.split(os.sep)
            if len(parts) == 3 and parts[0] == "src" and \
                    parts[2] not in layout:
                errors.append(f"doc/hacking.md: {rel} is missing from the "
                              "source layout")
    readme = os.path.join(top, "README.md")
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > README_MAX_LINES:
            errors.append(f"README.md: {n} lines, at most {README_MAX_LINES}:"
                          " move the details into doc/")
    return list(dict.fromkeys(errors))


def self_test():
    """Plants one mistake of each kind in a small tree and checks that every
    one is reported and that nothing else is, so that the checker cannot
    rot into a test that passes whatever the tree holds."""
    import tempfile
    good = "src/base/log.c"
    tree = {
        good: "/* see src/base/log.h, tests/test_NAME.c, tests/ */\n"
              'const char *s = "src/gone.c"; /* code, not a comment */\n',
        "src/base/log.h": "// the old place was src/log.h\n",
        "tests/test_x.c": "",
        "tests/run.sh": "#!/bin/sh\n# runs tests/missing.sh\necho '#' x\n"
                        '# see doc/a.md, "Top" and doc/a.md,\n# "Gone"\n',
        "doc/hacking.md": "# Layout\n\nlog.c test_x.c\n",
        "tests/check.py": '"""Rules in doc/gone.md."""\n',
        "doc/a.md": "# Top\n\n[ok](../README.md#readme) [bad](b.md)\n"
                    "[anchor](#nowhere) and DESIGN.md, /work/shared/x\n"
                    "```\nsrc/in/a/fence.c\n```\n",
        "debian/natter.docs": "README.md\ndoc/absent.md\n",
        "README.md": "# README\n" + "line\n" * README_MAX_LINES,
    }
    expect = ["src/base/log.h:1", "tests/run.sh:2", "tests/check.py:1",
              'tests/run.sh:4: doc/a.md, "Gone"',
              "doc/hacking.md: src/base/log.h",
              "doc/a.md:3", "doc/a.md:4: link #nowhere", "doc/a.md:4: DESIGN",
              "doc/a.md:4: /work/", "doc/a.md:6", "debian/natter.docs:2",
              "README.md: "]
    with tempfile.TemporaryDirectory() as top:
        for rel, text in tree.items():
            os.makedirs(os.path.dirname(os.path.join(top, rel)) or top,
                        exist_ok=True)
            with open(os.path.join(top, rel), "w") as f:
                f.write(text)
        errors = check_tree(top)
    status = 0
    for e in expect:
        if not any(x.startswith(e) for x in errors):
            print(f"self-test: nothing reported for {e}")
            status = 1
    for x in errors:
        if not any(x.startswith(e) for e in expect):
            print(f"self-test: reported in error: {x}")
            status = 1
    if status == 0:
        print(f"self-test: all {len(expect)} planted mistakes reported")
    return status


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    top = sys.argv[1] if len(sys.argv) > 1 else "."
    errors = check_tree(top)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} reference(s) to what the repository does not "
              "hold")
        return 1
    print("every path, link and document named is in the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
