#!/usr/bin/env python3
"""Checks Prometheus text exposition format (0.0.4) line by line and prints
the samples, one per line, as NAME{k="v",...} VALUE with labels sorted, so a
shell test can grep for exact values.

Every line must be one of: blank; '# HELP name text'; '# TYPE name type';
another '# ' comment; or a sample 'name[{labels}] value [timestamp]'. A
sample's family must have had its TYPE line, each family's samples must be
contiguous, and no family may be declared twice. Exits 1 naming the first
bad line."""
import re
import sys

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
LVALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r'(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN)'
SAMPLE = re.compile(r'^(%s)(?:\{((?:%s=%s)(?:,%s=%s)*,?)?\})? (%s)(?: -?[0-9]+)?$'
                    % (NAME, LABEL, LVALUE, LABEL, LVALUE, VALUE))
PAIR = re.compile(r'(%s)=(%s)' % (LABEL, LVALUE))
HELP = re.compile(r'^# HELP (%s) (.*)$' % NAME)
TYPE = re.compile(r'^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$'
                  % NAME)


def family(name, types):
    if name in types:
        return name
    for suffix in ('_bucket', '_count', '_sum'):
        if name.endswith(suffix) and name[:-len(suffix)] in types:
            return name[:-len(suffix)]
    return None


def main():
    text = sys.stdin.read()
    if text and not text.endswith('\n'):
        sys.exit('promparse: the text does not end in a line feed')
    types, done, current, out = {}, set(), None, []
    for n, line in enumerate(text.split('\n')[:-1], 1):
        def bad(why):
            sys.exit('promparse: line %d: %s: %r' % (n, why, line))
        if line == '':
            continue
        if line.startswith('#'):
            m = TYPE.match(line)
            if m:
                if m.group(1) in types:
                    bad('second TYPE for this family')
                types[m.group(1)] = m.group(2)
                continue
            if line.startswith('# HELP ') and not HELP.match(line):
                bad('malformed HELP')
            if line.startswith('# TYPE '):
                bad('malformed TYPE')
            continue
        m = SAMPLE.match(line)
        if not m:
            bad('not a sample (name{labels} value)')
        fam = family(m.group(1), types)
        if fam is None:
            bad('sample before its TYPE line')
        if fam != current:
            if fam in done:
                bad('samples of one family are not together')
            if current:
                done.add(current)
            current = fam
        labels = sorted(PAIR.findall(m.group(2) or ''))
        if len(set(k for k, _ in labels)) != len(labels):
            bad('a label appears twice')
        if types[fam] == 'counter' and m.group(3).startswith('-'):
            bad('negative counter')
        out.append('%s{%s} %s' % (m.group(1),
                                  ','.join('%s=%s' % kv for kv in labels),
                                  m.group(3)))
    if not out:
        sys.exit('promparse: no samples')
    print('\n'.join(out))


main()
