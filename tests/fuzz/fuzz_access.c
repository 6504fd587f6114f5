/* libFuzzer target: access rules (src/trust/access.c) as a user or a config
 * file writes them (target, command and peer rules), and the decisions they
 * make on targets and commands a hostile peer names, for a peer named by the
 * host string. Input: a rule line, then NUL, then a host, then NUL, then argv
 * words separated by NUL. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "trust/access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 3);
  char err[256];
  const char *argv[8];
  size_t argc = 0;

  if (!buf || size < 2) {
    free(buf);
    return 0;
  }
  uint16_t port = (uint16_t)(data[0] << 8 | data[1]);
  memcpy(buf, data + 2, size - 2);
  buf[size - 2] = buf[size - 1] = buf[size] = '\0';
  const char *rule = buf;
  /* Three NULs end |buf|, so both pointers stay inside it. */
  const char *host = rule + strlen(rule) + 1;
  for (const char *w = host + strlen(host) + 1;
       w < buf + size - 2 && *w && argc < 8; w += strlen(w) + 1) {
    argv[argc++] = w;
  }

  nt_access *acc = nt_access_new();
  if (!acc) {
    free(buf);
    return 0;
  }
  err[0] = '\0';
  int t = nt_access_add_target_rule(acc, rule, err, sizeof(err));
  if ((t != 0) != (nt_access_check_target_rule(rule, err, sizeof(err)) != 0)) {
    abort(); /* checking and adding agree */
  }
  int c = nt_access_add_command_rule(acc, rule, err, sizeof(err));
  if ((c != 0) !=
      (nt_access_check_command_rule(rule, err, sizeof(err)) != 0)) {
    abort();
  }
  int p = nt_access_add_peer_rule(acc, rule, err, sizeof(err));
  if ((p != 0) != (nt_access_check_peer_rule(rule, err, sizeof(err)) != 0)) {
    abort();
  }
  uint8_t key[32];
  memset(key, data[0], sizeof(key));
  nt_access_peer peer = {host, key};
  nt_access_peer_admitted(acc, &peer, data[1] & 1);
  nt_access_target_allowed(acc, &peer, host, port);
  nt_access_target_allowed(acc, NULL, host, port);
  /* The same after resolution: to an address taken from the input. */
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
  memset(&in4, 0, sizeof(in4));
  memset(&in6, 0, sizeof(in6));
  in4.sin_family = AF_INET;
  in6.sin6_family = AF_INET6;
  memcpy(&in4.sin_addr, key, 4);
  memcpy(&in6.sin6_addr, key, 16);
  if (strlen(host) >= 16) {
    memcpy(&in4.sin_addr, host, 4);
    memcpy(&in6.sin6_addr, host, 16);
  }
  nt_access_target_allowed_at(acc, &peer, host, port, (struct sockaddr *)&in4);
  nt_access_target_allowed_at(acc, &peer, host, port, (struct sockaddr *)&in6);
  if (argc > 0) {
    nt_access_command_allowed(acc, &peer, argv, argc);
    nt_access_command_allowed(acc, NULL, argv, argc);
  }
  nt_access_free(acc);
  free(buf);
  return 0;
}
