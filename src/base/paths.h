/* Where natter keeps its files by default. */
#ifndef NT_PATHS_H
#define NT_PATHS_H

#include <stddef.h>

/* Writes $XDG_CONFIG_HOME/natter/FILE, or ~/.config/natter/FILE, into
 * |out|. Returns 0, or -1 when no home directory is known or the path does
 * not fit. */
int nt_default_key_path(char *out, size_t outlen, const char *file);

/* The broker's registry file: $STATE_DIRECTORY/registry.db (the first of
 * systemd's StateDirectory= list), else $XDG_STATE_HOME/natter/registry.db,
 * else ~/.local/state/natter/registry.db. Returns 0 or -1 as above. */
int nt_default_registry_path(char *out, size_t outlen);

#endif
