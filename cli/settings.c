/* The settings table as data, and what is done with a cli_config: setting
 * a value, merging, comparing, freeing. The table is in settings.h. */
#include "settings.h"

#include "argv.h"
#include "text.h"
#include "values.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The table of settings.h as data: offsets of each field and its
 * FIELD_set or nFIELD. */
#define CLI_SET_OFF_(f) offsetof(cli_config, f##_set)
#define CLI_COUNT_OFF_(f) offsetof(cli_config, n##f)
#define CLI_SET_OFF_TEXT CLI_SET_OFF_
#define CLI_SET_OFF_SERVER CLI_SET_OFF_
#define CLI_SET_OFF_ADDR CLI_SET_OFF_
#define CLI_SET_OFF_NAME CLI_SET_OFF_
#define CLI_SET_OFF_FINGERPRINT CLI_SET_OFF_
#define CLI_SET_OFF_PEER CLI_SET_OFF_
#define CLI_SET_OFF_LOG_FORMAT CLI_SET_OFF_
#define CLI_SET_OFF_OPTIONAL_ADDR CLI_SET_OFF_
#define CLI_SET_OFF_BOOL CLI_SET_OFF_
#define CLI_SET_OFF_ACTION CLI_SET_OFF_
#define CLI_SET_OFF_COUNT CLI_SET_OFF_
#define CLI_SET_OFF_BYTES CLI_SET_OFF_
#define CLI_SET_OFF_DURATION CLI_SET_OFF_
#define CLI_SET_OFF_LOG_LEVEL CLI_SET_OFF_
#define CLI_SET_OFF_LEVEL_FLAG CLI_SET_OFF_
#define CLI_SET_OFF_ALLOW_RULES CLI_COUNT_OFF_
#define CLI_SET_OFF_COMMAND_RULES CLI_COUNT_OFF_
#define CLI_SET_OFF_PEER_RULES CLI_COUNT_OFF_
#define CLI_SET_OFF_FINGERPRINTS CLI_COUNT_OFF_
#define CLI_SET_OFF_FORWARDS CLI_COUNT_OFF_

const cli_setting cli_settings[CLI_S_COUNT] = {
#define X(id, flag, key, type, field, arg, min, max, expect, def, scope,       \
          reload, help)                                                        \
  {flag,                                                                       \
   key,                                                                        \
   CLI_T_##type,                                                               \
   offsetof(cli_config, field),                                                \
   CLI_SET_OFF_##type(field),                                                  \
   arg,                                                                        \
   min,                                                                        \
   max,                                                                        \
   expect,                                                                     \
   def,                                                                        \
   scope,                                                                      \
   reload,                                                                     \
   help},
    CLI_SETTINGS(X)
#undef X
};

/* Flags that name a setting without being its FLAG: --help is shown next
 * to -h; -help and -version are accepted and not shown. */
const cli_flag_alias cli_flag_aliases[] = {
    {"--help", CLI_S_HELP, 1},
    {"-help", CLI_S_HELP, 0},
    {"-version", CLI_S_VERSION, 0},
};
const size_t cli_flag_alias_count =
    sizeof(cli_flag_aliases) / sizeof(cli_flag_aliases[0]);

const cli_setting *cli_setting_by_flag(const char *flag) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    if (cli_settings[i].flag && strcmp(flag, cli_settings[i].flag) == 0) {
      return &cli_settings[i];
    }
  }
  for (size_t i = 0; i < cli_flag_alias_count; i++) {
    if (strcmp(flag, cli_flag_aliases[i].alias) == 0) {
      return &cli_settings[cli_flag_aliases[i].id];
    }
  }
  return NULL;
}

const cli_setting *cli_setting_by_key(const char *key, size_t n) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const char *k = cli_settings[i].key;
    if (k && strlen(k) == n && memcmp(k, key, n) == 0) {
      return &cli_settings[i];
    }
  }
  return NULL;
}

int cli_setting_is_list(const cli_setting *s) {
  return s->type >= CLI_T_ALLOW_RULES;
}

const char *cli_setting_label(const cli_setting *s) {
  return s->type == CLI_T_ALLOW_RULES ? "allow rule" : s->key;
}

#define FIELD(c, s, T) ((T *)((char *)(c) + (s)->off))
#define SET(c, s) ((size_t *)((char *)(c) + (s)->set_off))
#define CFIELD(c, s, T) ((T const *)((const char *)(c) + (s)->off))
#define CSET(c, s) ((const size_t *)((const char *)(c) + (s)->set_off))

static int is_string(const cli_setting *s) {
  return s->type <= CLI_T_OPTIONAL_ADDR;
}

int cli_setting_in_use(const cli_config *c, const cli_setting *s) {
  if (cli_setting_is_list(s)) {
    return *CSET(c, s) > 0;
  }
  if (s->type == CLI_T_BOOL) {
    return *CSET(c, s) > 0 && *CFIELD(c, s, unsigned long long) != 0;
  }
  return *CSET(c, s) > 0;
}

/* Replaces a string field by a copy of |value| (which may be NULL). */
static int store_string(char **field, const char *value) {
  char *copy = NULL;
  if (value != NULL && (copy = strdup(value)) == NULL) {
    return -1;
  }
  free(*field);
  *field = copy;
  return 0;
}

int cli_setting_set(cli_config *c, const cli_setting *s, const char *value,
                    size_t line, int from_file, char *why, size_t whylen) {
  unsigned long long num = 1;

  if (why != NULL && whylen > 0) {
    why[0] = '\0';
  }
  if (s->type == CLI_T_LEVEL_FLAG) {
    num = s->min; /* the level this flag stands for */
  } else if (value != NULL &&
             cli_value_check(s, value, from_file, &num, why, whylen) != 0) {
    return -1;
  }
  if (cli_setting_is_list(s)) {
    char **list = FIELD(c, s, char *);
    size_t *n = SET(c, s);
    if (s->type == CLI_T_FORWARDS || value == NULL) {
      return -1;
    }
    if (*n >= CLI_CONFIG_MAX_LIST) {
      return -2;
    }
    if ((list[*n] = strdup(value)) == NULL) {
      cli_set_err(why, whylen, "out of memory");
      return -1;
    }
    list[++*n] = NULL;
    return 0;
  }
  if (is_string(s)) {
    if (store_string(FIELD(c, s, char *), value) != 0) {
      cli_set_err(why, whylen, "out of memory");
      return -1;
    }
  } else {
    *FIELD(c, s, unsigned long long) = num;
  }
  *SET(c, s) = line;
  return 0;
}

static void free_forwards(cli_forward *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(f[i].spec);
    cli_argv_free(f[i].argv);
  }
}

static char **copy_argv(char *const *argv) {
  size_t n = 0;
  char **copy;
  while (argv[n] != NULL) {
    n++;
  }
  if ((copy = calloc(n + 1, sizeof(*copy))) == NULL) {
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if ((copy[i] = strdup(argv[i])) == NULL) {
      cli_argv_free(copy);
      return NULL;
    }
  }
  return copy;
}

/* Puts copies of |under|'s |nadd| forwards before |c|'s. */
static int overlay_forwards(cli_config *c, const cli_config *under) {
  size_t nadd = under->nforward;
  if (nadd == 0) {
    return 0;
  }
  if (c->nforward + nadd > CLI_CONFIG_MAX_LIST) {
    return -1;
  }
  memmove(c->forward + nadd, c->forward, c->nforward * sizeof(c->forward[0]));
  memset(c->forward, 0, nadd * sizeof(c->forward[0]));
  c->nforward += nadd;
  for (size_t i = 0; i < nadd; i++) {
    const cli_forward *f = &under->forward[i];
    c->forward[i] = *f;
    c->forward[i].spec = strdup(f->spec);
    c->forward[i].argv = f->argv ? copy_argv(f->argv) : NULL;
    if (!c->forward[i].spec || (f->argv && !c->forward[i].argv)) {
      return -1;
    }
  }
  return 0;
}

int cli_config_overlay(cli_config *c, const cli_config *under,
                       const cli_setting **full) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    if (s->type == CLI_T_FORWARDS) {
      if (overlay_forwards(c, under) != 0) {
        goto fail;
      }
    } else if (cli_setting_is_list(s)) {
      char **list = FIELD(c, s, char *);
      char *const *add = CFIELD(under, s, char *);
      size_t *n = SET(c, s), nadd = *CSET(under, s);
      if (nadd == 0) {
        continue;
      }
      if (*n + nadd > CLI_CONFIG_MAX_LIST) {
        goto fail;
      }
      memmove(list + nadd, list, (*n + 1) * sizeof(*list));
      memset(list, 0, nadd * sizeof(*list));
      *n += nadd;
      for (size_t j = 0; j < nadd; j++) {
        if ((list[j] = strdup(add[j])) == NULL) {
          goto fail;
        }
      }
    } else if (s->type != CLI_T_LEVEL_FLAG && *SET(c, s) == 0 &&
               *CSET(under, s) > 0) {
      if (is_string(s)) {
        if (store_string(FIELD(c, s, char *), *CFIELD(under, s, char *)) != 0) {
          goto fail;
        }
      } else {
        *FIELD(c, s, unsigned long long) =
            *CFIELD(under, s, unsigned long long);
      }
      *SET(c, s) = *CSET(under, s);
    }
    continue;
  fail:
    if (full != NULL) {
      *full = s;
    }
    return -1;
  }
  return 0;
}

int cli_config_add_forward(cli_config *c, const char *spec, char *const *argv,
                           size_t line) {
  cli_forward *f;
  if (c->nforward >= CLI_CONFIG_MAX_LIST) {
    return -2;
  }
  f = &c->forward[c->nforward];
  memset(f, 0, sizeof(*f));
  f->spec = strdup(spec);
  f->argv = argv ? copy_argv(argv) : NULL;
  if (f->spec == NULL || (argv && f->argv == NULL)) {
    free(f->spec);
    cli_argv_free(f->argv);
    return -1;
  }
  while (f->argv && f->argv[f->argc] != NULL) {
    f->argc++;
  }
  f->line = line;
  c->nforward++;
  return 0;
}

int cli_forward_equal(const cli_forward *a, const cli_forward *b) {
  if (strcmp(a->spec, b->spec) != 0 || a->argc != b->argc) {
    return 0;
  }
  for (size_t i = 0; i < a->argc; i++) {
    if (strcmp(a->argv[i], b->argv[i]) != 0) {
      return 0;
    }
  }
  return 1;
}

int cli_setting_equal(const cli_config *a, const cli_config *b,
                      const cli_setting *s) {
  if (s->type == CLI_T_FORWARDS) {
    if (a->nforward != b->nforward) {
      return 0;
    }
    for (size_t i = 0; i < a->nforward; i++) {
      if (!cli_forward_equal(&a->forward[i], &b->forward[i])) {
        return 0;
      }
    }
    return 1;
  }
  if (cli_setting_is_list(s)) {
    if (*CSET(a, s) != *CSET(b, s)) {
      return 0;
    }
    for (size_t i = 0; i < *CSET(a, s); i++) {
      if (strcmp(CFIELD(a, s, char *)[i], CFIELD(b, s, char *)[i]) != 0) {
        return 0;
      }
    }
    return 1;
  }
  if ((*CSET(a, s) > 0) != (*CSET(b, s) > 0)) {
    return 0;
  }
  if (is_string(s)) {
    const char *x = *CFIELD(a, s, char *), *y = *CFIELD(b, s, char *);
    return x == y || (x && y && strcmp(x, y) == 0);
  }
  return *CFIELD(a, s, unsigned long long) == *CFIELD(b, s, unsigned long long);
}

void cli_config_init(cli_config *c) {
  memset(c, 0, sizeof(*c));
}

void cli_config_free(cli_config *c) {
  if (c == NULL) {
    return;
  }
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    if (s->type == CLI_T_FORWARDS) {
      free_forwards(c->forward, c->nforward);
    } else if (cli_setting_is_list(s)) {
      for (size_t j = 0; j < *SET(c, s); j++) {
        free(FIELD(c, s, char *)[j]);
      }
    } else if (is_string(s)) {
      free(*FIELD(c, s, char *));
    }
  }
  cli_config_init(c);
}

size_t cli_setting_line(const cli_config *c, const cli_setting *s) {
  return *CSET(c, s);
}
