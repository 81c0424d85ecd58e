/*
 * run_key.c — the key under which `larder run` keeps a command's result,
 * in the library so that every client (the CLI, bindings) builds the same
 * bytes from the same run and shares its entries. The format is stable
 * and tagged "larder-run/2"; docs/cli.md ("What is stored, byte by byte")
 * spells it out. A later encoding takes another tag, never changes this
 * one: entries already in stores must keep being found.
 */
#include "larder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where records go: p is NULL while only counting the length. */
struct out {
	char *p;
	size_t len;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->p && n)
		memcpy(o->p + o->len, p, n);
	o->len += n;
}

/* One record: TAG LENGTH ':' BYTES '\n'. The decimal length frames the
 * bytes, so arguments ["a b"] and ["a", "b"] differ; the newline is only
 * there to make the key readable in `larder ls`. */
static void rec(struct out *o, char tag, const char *s)
{
	char head[32];
	size_t n = strlen(s);
	int h = snprintf(head, sizeof(head), "%c%zu:", tag, n);

	put(o, head, (size_t)h);
	put(o, s, n);
	put(o, "\n", 1);
}

/* The records in their order; the caller checked the spec. */
static void encode(struct out *o, const larder_run_spec *s)
{
	put(o, LARDER_RUN_FORMAT "\n", sizeof(LARDER_RUN_FORMAT));
	if (s->key) {
		rec(o, 'k', s->key);
	} else {
		rec(o, 'd', s->cwd);
		for (size_t i = 0; i < s->argc; i++)
			rec(o, 'a', s->argv[i]);
	}
	for (size_t i = 0; i < s->ninputs; i++)
		rec(o, 'i', s->inputs[i]);
	for (size_t i = 0; i < s->nenv; i++)
		rec(o, 'e', s->env[i]);
	if (s->version_cmd)
		rec(o, 'v', s->version_cmd);
	if (s->cache_failures)
		rec(o, 'f', "cache-failures");
}

static int strings_ok(const char *const *v, size_t n)
{
	if (n && !v)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!v[i])
			return 0;
	return 1;
}

void larder_run_spec_init(larder_run_spec *spec)
{
	const larder_run_spec init = LARDER_RUN_SPEC_INIT;

	if (spec)
		*spec = init;
}

int larder_run_key(char **out, size_t *outlen, const larder_run_spec *spec)
{
	struct out o = {NULL, 0};

	if (!out || !outlen)
		return LARDER_EINVAL;
	*out = NULL;
	*outlen = 0;
	if (!spec || spec->version != LARDER_RUN_SPEC_VERSION)
		return LARDER_EINVAL;
	/* Without --key, the command and where it runs name the result. */
	if (!spec->key && (!spec->cwd || spec->argc == 0 ||
			   !strings_ok(spec->argv, spec->argc)))
		return LARDER_EINVAL;
	if (!strings_ok(spec->inputs, spec->ninputs) ||
	    !strings_ok(spec->env, spec->nenv))
		return LARDER_EINVAL;
	/* Two passes, counting then writing: the key is made once per run,
	 * and no buffer grows by guesswork. */
	encode(&o, spec);
	o.p = malloc(o.len + 1);
	if (!o.p)
		return LARDER_ENOMEM;
	o.len = 0;
	encode(&o, spec);
	o.p[o.len] = '\0';
	*out = o.p;
	*outlen = o.len;
	return 0;
}

void larder_run_key_free(char *key)
{
	free(key);
}
