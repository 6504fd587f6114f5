#!/bin/sh
# check_wrapped.sh "WRAPPED..." OBJECT...: every nt_conn_* and nt_stream_*
# function that the code above QUIC (the objects of src/broker and
# src/status among OBJECTs) calls is in WRAPPED (FAKE_QUIC_WRAPPED in
# tests/fuzz/CMakeLists.txt). One that is not reaches the real QUIC layer
# with a fake connection from tests/fuzz/fake_quic.c: it reads a struct
# that is not there instead of failing.
wrapped=" $1 "
shift
missing=
for obj in "$@"; do
  case $obj in
  */src/broker/* | */src/status/*) ;;
  *) continue ;;
  esac
  for sym in $(nm -u "$obj" | grep -oE '\bnt_(conn|stream)_[a-z0-9_]+\b'); do
    case $wrapped in
    *" $sym "*) ;;
    *) missing="$missing $sym (${obj##*/src/})" ;;
    esac
  done
done
if [ -n "$missing" ]; then
  echo "called above QUIC but not in FAKE_QUIC_WRAPPED:$missing" >&2
  exit 1
fi
echo "every nt_conn_*/nt_stream_* call above QUIC is wrapped"
