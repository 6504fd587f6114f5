#!/usr/bin/env python3
"""The include rules of src/ (doc/hacking.md, "Layers"), checked.

Each folder of src/ is a layer and may include only the layers listed for
it here; a third-party library's headers stay in the files that own that
library; a role's *_internal.h stays in its folder; cli/ and examples/ see
only the public header. Exits 1 and names every violation.

Usage: check_layers.py SOURCE_DIR | --self-test
"""
import os
import re
import sys

# Which folders a folder's files may include, lowest layer first. A folder
# always may include itself.
LAYERS = {
    "base": [],
    "codec": ["base"],
    "trust": ["base", "codec"],
    "quic": ["base", "codec", "trust"],
    "status": ["base", "codec", "trust", "quic"],
    "client": ["base", "codec", "trust", "quic", "status"],
    "broker": ["base", "codec", "trust", "quic", "status"],
}

# A library's headers and the only files that may include them.
OWNERS = {
    "gnutls/": ["trust/tls.h", "trust/tls.c"],
    "ngtcp2/": ["quic/", "trust/tls.h", "trust/tls.c"],
    "nghttp3/": ["status/h3.c"],
    "sqlite3.h": ["broker/registry_sqlite.c"],
    "natter.pb-c.h": ["codec/"],
    "libpq-fe.h": ["broker/registry_pg.c", "broker/bus_pg.c"],
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def includes(path):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield lineno, m.group(1), m.group(2)


def check_src(src):
    errors = []
    for folder in sorted(os.listdir(src)):
        fdir = os.path.join(src, folder)
        if not os.path.isdir(fdir):
            continue
        if folder not in LAYERS:
            errors.append(f"src/{folder}/: a folder with no layer rule; "
                          "add it to LAYERS in tests/check_layers.py")
            continue
        allowed = set(LAYERS[folder]) | {folder}
        for name in sorted(os.listdir(fdir)):
            if not name.endswith((".c", ".h")):
                continue
            rel = f"{folder}/{name}"
            for lineno, kind, inc in includes(os.path.join(fdir, name)):
                where = f"src/{rel}:{lineno}: #include {inc}"
                for lib, owners in OWNERS.items():
                    if inc.startswith(lib) and not any(
                            rel == o or (o.endswith("/") and rel.startswith(o))
                            for o in owners):
                        errors.append(f"{where}: {lib} belongs to "
                                      f"{', '.join(owners)} only")
                if kind != '"' or inc == "natter.h" or "/" not in inc:
                    if kind == '"' and inc not in ("natter.h",
                                                   "natter.pb-c.h",
                                                   "hostile.h"):
                        errors.append(f"{where}: name the folder "
                                      "(\"layer/file.h\")")
                    continue
                target = inc.split("/", 1)[0]
                if target not in LAYERS:
                    errors.append(f"{where}: no such layer")
                elif target not in allowed:
                    errors.append(f"{where}: {folder}/ may include only "
                                  f"{', '.join(sorted(allowed))}")
                if inc.endswith("_internal.h") and target != folder:
                    errors.append(f"{where}: an _internal.h header stays "
                                  f"in {target}/")
                if not os.path.exists(os.path.join(src, inc)):
                    errors.append(f"{where}: no such header")
    return errors


def check_public_only(top, folder):
    errors = []
    base = os.path.join(top, folder)
    for dirpath, _, names in os.walk(base):
        for name in sorted(names):
            if not name.endswith((".c", ".h", ".cpp")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            for lineno, kind, inc in includes(path):
                if kind == '"' and "/" in inc:
                    errors.append(f"{rel}:{lineno}: #include {inc}: "
                                  f"{folder}/ uses only natter.h")
    return errors


def self_test():
    """Builds a small tree with one violation of each kind and checks that
    every one is reported, so that the checker itself cannot rot into a
    test that passes whatever the tree holds."""
    import tempfile
    bad = {
        "src/base/up.c": '#include "client/peer.h"\n',
        "src/codec/lib.c": "#include <sqlite3.h>\n",
        "src/broker/peek.c": '#include "client/client_internal.h"\n',
        "src/quic/flat.c": '#include "endpoint.h"\n',
        "src/client/peer.h": "",
        "src/client/client_internal.h": "",
        "src/odd/x.c": "",
        "cli/main.c": '#include "base/log.h"\n',
    }
    expect = ["src/base/up.c:1", "src/codec/lib.c:1", "src/broker/peek.c:1",
              "src/quic/flat.c:1", "src/odd/", "cli/main.c:1"]
    with tempfile.TemporaryDirectory() as top:
        for rel, text in bad.items():
            os.makedirs(os.path.dirname(os.path.join(top, rel)),
                        exist_ok=True)
            with open(os.path.join(top, rel), "w") as f:
                f.write(text)
        os.makedirs(os.path.join(top, "examples"))
        errors = (check_src(os.path.join(top, "src")) +
                  check_public_only(top, "cli"))
    missed = [e for e in expect if not any(x.startswith(e) for x in errors)]
    for e in missed:
        print(f"self-test: no violation reported for {e}")
    if len(errors) < len(expect):
        print(f"self-test: {len(errors)} violations, want {len(expect)}+")
        return 1
    if missed:
        return 1
    print(f"self-test: all {len(expect)} planted violations reported")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    top = sys.argv[1] if len(sys.argv) > 1 else "."
    errors = check_src(os.path.join(top, "src"))
    for folder in ("cli", "examples"):
        errors += check_public_only(top, folder)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} include rule violation(s)")
        return 1
    print("include rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
