/* The relay's budgets per key and per source address (relay_budget.h). */
#include "broker/relay_budget.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/budget.h"

void nt_relay_budget_init(nt_relay_budget *b, uint64_t rate, uint64_t total,
                          uint64_t window_ns,
                          const uint8_t seed[NT_HASHMAP_SEED_LEN]) {
  memset(b, 0, sizeof(*b));
  b->rate = rate;
  b->total = total;
  b->window_ns = window_ns;
  nt_hashmap_init(&b->accounts, seed);
  TAILQ_INIT(&b->kept[0]);
  TAILQ_INIT(&b->kept[1]);
}

void nt_relay_budget_clear(nt_relay_budget *b) {
  for (size_t i = 0; i < b->accounts.capacity; i++) {
    if (b->accounts.slots && b->accounts.slots[i].key) {
      free(b->accounts.slots[i].value);
    }
  }
  nt_hashmap_clear(&b->accounts);
  for (int k = 0; k < 2; k++) {
    TAILQ_INIT(&b->kept[k]);
    b->nkept[k] = 0;
  }
}

/* Which kept list |a| goes on: 0 keys, 1 addresses. */
static int kind_of(const nt_relay_account *a) {
  return a->id[0] == NT_RELAY_BY_ADDRESS;
}

static void unkeep(nt_relay_budget *b, nt_relay_account *a) {
  if (a->kept) {
    TAILQ_REMOVE(&b->kept[kind_of(a)], a, link);
    b->nkept[kind_of(a)]--;
    a->kept = 0;
  }
}

static void account_free(nt_relay_budget *b, nt_relay_account *a) {
  unkeep(b, a);
  nt_hashmap_remove(&b->accounts, a->id, a->idlen);
  free(a);
}

/* A window that has run out starts afresh (at the next byte). */
static void roll_window(const nt_relay_budget *b, nt_relay_account *a,
                        uint64_t now) {
  if (a->window_ns && now - a->window_ns >= b->window_ns) {
    a->window_ns = 0;
    a->used = 0;
  }
}

static nt_relay_account *account_get(nt_relay_budget *b, const uint8_t *id,
                                     size_t idlen, const char *label,
                                     uint64_t now) {
  nt_relay_account *a = nt_hashmap_get(&b->accounts, id, idlen);
  if (a) {
    unkeep(b, a);
    a->refs++;
    return a;
  }
  a = calloc(1, sizeof(*a));
  if (!a) {
    return NULL;
  }
  memcpy(a->id, id, idlen);
  a->idlen = idlen;
  snprintf(a->label, sizeof(a->label), "%s", label);
  a->bucket = (double)b->rate;
  a->bucket_ns = now;
  a->refs = 1;
  if (nt_hashmap_put(&b->accounts, a->id, a->idlen, a) != 0) {
    free(a);
    return NULL;
  }
  return a;
}

nt_relay_account *nt_relay_account_of_key(nt_relay_budget *b, const uint8_t *fp,
                                          uint64_t now) {
  uint8_t id[1 + NT_FINGERPRINT_LEN];
  char label[NT_RELAY_LABEL_MAX];
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;

  id[0] = NT_RELAY_BY_KEY;
  memcpy(id + 1, fp, NT_FINGERPRINT_LEN);
  n += (size_t)snprintf(label, sizeof(label), "key ");
  for (size_t i = 0; i < 8; i++) { /* 16 hex digits, as the broker logs */
    label[n++] = hex[fp[i] >> 4];
    label[n++] = hex[fp[i] & 15];
  }
  snprintf(label + n, sizeof(label) - n, "...");
  return account_get(b, id, sizeof(id), label, now);
}

nt_relay_account *nt_relay_account_of_address(nt_relay_budget *b,
                                              const struct sockaddr *ip,
                                              uint64_t now) {
  uint8_t id[1 + NT_SOURCE_KEY_MAX], raw[16];
  char label[NT_RELAY_LABEL_MAX], text[INET6_ADDRSTRLEN];

  /* One source: an IPv4 address, or an IPv6 /64 (budget.h). */
  size_t len = nt_source_key(ip, id + 1);
  if (!len) {
    return NULL;
  }
  id[0] = NT_RELAY_BY_ADDRESS;
  memset(raw, 0, sizeof(raw));
  memcpy(raw, id + 1, len);
  inet_ntop(len == 4 ? AF_INET : AF_INET6, raw, text, sizeof(text));
  snprintf(label, sizeof(label), "%s%s", text, len == 4 ? "" : "/64");
  return account_get(b, id, 1 + len, label, now);
}

void nt_relay_account_release(nt_relay_budget *b, nt_relay_account *a,
                              uint64_t now) {
  if (!a || --a->refs > 0) {
    return;
  }
  roll_window(b, a, now);
  if (!a->used || !b->total) {
    account_free(b, a); /* nothing to remember */
    return;
  }
  int k = kind_of(a);
  if (b->nkept[k] == NT_RELAY_KEPT_ACCOUNTS) {
    account_free(b, TAILQ_FIRST(&b->kept[k])); /* the oldest goes */
  }
  a->kept = 1;
  TAILQ_INSERT_TAIL(&b->kept[k], a, link);
  b->nkept[k]++;
}

static void refill(const nt_relay_budget *b, nt_relay_account *a,
                   uint64_t now) {
  if (now > a->bucket_ns) {
    a->bucket += (double)(now - a->bucket_ns) * (double)b->rate / 1e9;
  }
  a->bucket_ns = now;
  /* One second's worth of burst. */
  if (a->bucket > (double)b->rate) {
    a->bucket = (double)b->rate;
  }
}

int nt_relay_spend(nt_relay_budget *b, nt_relay_account *const *accts,
                   size_t count, size_t n, uint64_t now,
                   nt_relay_account **over) {
  *over = NULL;
  for (size_t i = 0; i < count; i++) {
    roll_window(b, accts[i], now);
    if (b->total && accts[i]->used + n > b->total) {
      *over = accts[i];
      return NT_RELAY_SPEND_TOTAL;
    }
  }
  if (b->rate) {
    for (size_t i = 0; i < count; i++) {
      refill(b, accts[i], now);
      if (accts[i]->bucket < (double)n) {
        *over = accts[i];
        return NT_RELAY_SPEND_RATE;
      }
    }
  }
  for (size_t i = 0; i < count; i++) {
    nt_relay_account *a = accts[i];
    if (b->rate) {
      a->bucket -= (double)n;
    }
    if (!a->window_ns) {
      a->window_ns = now ? now : 1;
    }
    a->used += n;
  }
  return NT_RELAY_SPEND_OK;
}

void nt_relay_budget_expire(nt_relay_budget *b, uint64_t now) {
  nt_relay_account *a, *next;
  for (int k = 0; k < 2; k++) {
    for (a = TAILQ_FIRST(&b->kept[k]); a; a = next) {
      next = TAILQ_NEXT(a, link);
      roll_window(b, a, now);
      if (!a->used) {
        account_free(b, a);
      }
    }
  }
}

size_t nt_relay_budget_accounts(const nt_relay_budget *b) {
  return nt_hashmap_count(&b->accounts);
}
