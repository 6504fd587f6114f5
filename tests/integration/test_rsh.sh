#!/usr/bin/env bash
# natter -rsh: natter as the remote shell of rsync -e, scp -S and git's
# GIT_SSH_COMMAND, with no sshd on bob: the rest of the command line is
# ssh's [OPTIONS] HOST COMMAND..., and COMMAND runs on bob under its
# -allow-command rules. Checked with the real programs:
#   - rsync pulls a tree from bob and pushes it back, into directories whose
#     paths hold a space and a quote; the tree has odd names (spaces, both
#     quotes, a leading dash, a newline, a backslash, '*', UTF-8, an empty
#     file): the SHA-256 of every file matches
#   - a remote rsync that fails (no such source) makes rsync fail: the exit
#     status of the remote command comes back
#   - git clone of a repository on bob (git-upload-pack '/path'), also by
#     ssh://bob:2222/ (git probes with -G, then passes -p and -o SendEnv),
#     and git push (git-receive-pack)
#   - scp -O (legacy mode) one file both ways; scp's default SFTP mode runs
#     bob's sftp-server (allowed by a rule)
#   - a command bob does not allow: non-zero exit (255) and a clear message;
#     what would need a shell (a wildcard, a pipe) is refused before
#     anything starts; an unknown ssh option is refused
#   - the remote command's exit status is natter's
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

for prog in rsync git scp; do
  command -v "$prog" >/dev/null || {
    echo "$prog is not installed (./dev deps installs it): skipped" >&2
    exit 77
  }
done

start_broker broker
# Test rules only: 'rsync --server *' lets alice make rsync do anything it
# can (doc/design.md); a real host lists the exact command lines.
start_client bob -listen -allow-peer alice \
  -allow-command 'rsync --server *' \
  -allow-command 'git-upload-pack *' -allow-command 'git-receive-pack *' \
  -allow-command 'scp -t *' -allow-command 'scp -f *' \
  -allow-command /usr/lib/openssh/sftp-server \
  -allow-command 'sh -c *'
RSH_CMD=("$NATTER" -name alice -broker "$BROKER" -identity "$WORK/alice.key"
  -rsh)
RSH=${RSH_CMD[*]} # for rsync -e, scp -S and git, which split it on blanks

# tree_sums DIR: "SHA-256  NAME" of every file under DIR, sorted; names with
# a newline come out escaped, the same on both sides.
tree_sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

# ---- rsync both ways -------------------------------------------------------

src="$WORK/bob's src"
mkdir -p "$src/sub dir" "$src/ünï cødé"
head -c 300000 /dev/urandom >"$src/big file.bin"
printf 'a\n' >"$src/-leading-dash"
printf 'b\n' >"$src/it's \"quoted\""
printf 'c\n' >"$src/new"$'\n'"line"
printf 'd\n' >"$src/back\\slash and *star"
printf 'e\n' >"$src/ünï cødé/日本語.txt"
: >"$src/sub dir/empty"
want=$(tree_sums "$src")

log "rsync pulls a tree from bob"
run_capture 60 rsync -a -e "$RSH" "bob:$src/" "$WORK/pulled/"
((STATUS == 0)) || fail "rsync pull: exit $STATUS: $OUTPUT"
[[ $(tree_sums "$WORK/pulled") == "$want" ]] ||
  fail "rsync pull: the trees differ: $(diff <(echo "$want") <(tree_sums "$WORK/pulled"))"

log "rsync pushes it to bob"
dst="$WORK/bob dst \"here\""
mkdir -p "$dst"
run_capture 60 rsync -a -e "$RSH" "$WORK/pulled/" "bob:$dst/"
((STATUS == 0)) || fail "rsync push: exit $STATUS: $OUTPUT"
[[ $(tree_sums "$dst") == "$want" ]] ||
  fail "rsync push: the trees differ: $(diff <(echo "$want") <(tree_sums "$dst"))"

log "a failing remote rsync fails rsync"
run_capture 60 rsync -a -e "$RSH" "bob:$WORK/no such dir/" "$WORK/none/"
((STATUS != 0)) || fail "rsync of a missing source exited 0: $OUTPUT"
assert_output_contains 'No such file or directory'

log "the remote command's exit status is natter's; a file's serving lines are ignored"
printf 'listen = yes\nallow-peer = bob\nallow-command = cat\nforward = %s:bob:22\n' \
  "$(free_port)" >"$WORK/alice.conf"
run_capture 30 "$NATTER" -config "$WORK/alice.conf" -name alice \
  -broker "$BROKER" -identity "$WORK/alice.key" -rsh -l someone -x \
  -oRequestTTY=no bob "sh -c 'exit 7'"
((STATUS == 7)) || fail "sh -c 'exit 7': natter exited $STATUS, want 7: $OUTPUT"

# ---- git -------------------------------------------------------------------

export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org \
  GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
repo="$WORK/it's repo.git"
git -c init.defaultBranch=main init -q --bare "$repo"
git -c init.defaultBranch=main init -q "$WORK/seed"
printf 'hello\n' >"$WORK/seed/README"
git -C "$WORK/seed" add README
git -C "$WORK/seed" commit -q -m first
git -C "$WORK/seed" push -q "$repo" main

log "git clone over natter -rsh"
export GIT_SSH_COMMAND=$RSH
run_capture 60 git clone -q "bob:$repo" "$WORK/clone"
((STATUS == 0)) || fail "git clone: exit $STATUS: $OUTPUT"
[[ $(cat "$WORK/clone/README") == hello ]] || fail "git clone: README differs"

log "git clone ssh://bob:2222/... (git probes -G, passes -p and -o)"
run_capture 60 git clone -q "ssh://bob:2222$repo" "$WORK/clone2"
((STATUS == 0)) || fail "git clone ssh://: exit $STATUS: $OUTPUT"

log "git push over natter -rsh"
printf 'more\n' >>"$WORK/clone/README"
git -C "$WORK/clone" commit -q -am second
run_capture 60 git -C "$WORK/clone" push -q origin main
((STATUS == 0)) || fail "git push: exit $STATUS: $OUTPUT"
[[ $(git -C "$repo" log --format=%s main | head -1) == second ]] ||
  fail "git push: bob's repository lacks the pushed commit"
unset GIT_SSH_COMMAND

# ---- scp -------------------------------------------------------------------

log "scp -O both ways"
# scp -S runs a program, not a command line: a two-line wrapper.
printf '#!/bin/sh\nexec %s "$@"\n' "$RSH" >"$WORK/natter-rsh"
chmod +x "$WORK/natter-rsh"
head -c 100000 /dev/urandom >"$WORK/one.bin"
run_capture 60 scp -q -O -S "$WORK/natter-rsh" "$WORK/one.bin" "bob:$WORK/scp-up.bin"
((STATUS == 0)) || fail "scp -O upload: exit $STATUS: $OUTPUT"
run_capture 60 scp -q -O -S "$WORK/natter-rsh" "bob:$WORK/scp-up.bin" "$WORK/scp-down.bin"
((STATUS == 0)) || fail "scp -O download: exit $STATUS: $OUTPUT"
[[ $(sha256_of "$WORK/scp-down.bin") == $(sha256_of "$WORK/one.bin") ]] ||
  fail "scp -O: the file came back different"

if [[ -x /usr/lib/openssh/sftp-server ]]; then
  log "scp (SFTP) runs bob's sftp-server"
  run_capture 60 scp -q -S "$WORK/natter-rsh" "$WORK/one.bin" "bob:$WORK/sftp-up.bin"
  ((STATUS == 0)) || fail "scp (sftp) upload: exit $STATUS: $OUTPUT"
  [[ $(sha256_of "$WORK/sftp-up.bin") == $(sha256_of "$WORK/one.bin") ]] ||
    fail "scp (sftp): the file arrived different"
fi

# ---- refusals --------------------------------------------------------------

log "a command bob does not allow"
run_capture 30 "${RSH_CMD[@]}" bob ls /
((STATUS == 255)) || fail "ls on bob: exit $STATUS, want 255: $OUTPUT"
assert_output_contains 'natter: .*not allowed'

log "what needs a shell is refused before anything starts"
run_capture 10 "${RSH_CMD[@]}" bob 'cat /etc/*'
((STATUS == 255)) || fail "a wildcard: exit $STATUS, want 255: $OUTPUT"
assert_output_contains "natter -rsh: '\*' at .* needs a shell"
run_capture 10 "${RSH_CMD[@]}" bob 'cat f | sh'
((STATUS == 255)) || fail "a pipe: exit $STATUS, want 255: $OUTPUT"
assert_output_contains "natter -rsh: '\|' at .* needs a shell"
run_capture 10 "${RSH_CMD[@]}" -L 8080:x:80 bob cat
((STATUS == 255)) || fail "ssh -L: exit $STATUS, want 255: $OUTPUT"
assert_output_contains 'natter -rsh: ssh option -L is not supported'
run_capture 10 "${RSH_CMD[@]}" bob
((STATUS == 255)) || fail "no command: exit $STATUS, want 255: $OUTPUT"
assert_output_contains 'natter -rsh: no command for bob'

assert_log_contains bob 'git-receive-pack'
stop_expect_clean bob
stop_expect_clean broker
log "passed"
