/*
 * test_run_key.c — larder_run_key(): the key `larder run` keeps its
 * results under, built by the library so that other clients share them.
 * The encoding is a stable format (docs/cli.md, "What is stored, byte by
 * byte"): the golden keys below are that document's bytes, and the last
 * test checks that the entry `larder run` stores is found under the key
 * the library makes.
 */
#include "harness.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "larder.h"

static void key_is(const larder_run_spec *spec, const char *want)
{
	char *key = NULL;
	size_t len = 0;

	ASSERT_EQ(larder_run_key(&key, &len, spec), 0);
	ASSERT_EQ(len, strlen(want));
	ASSERT_MEM_EQ(key, want, len);
	ASSERT_EQ(key[len], '\0');
	larder_run_key_free(key);
}

TEST(argv_cwd_inputs_env_version_cmd_in_documented_order)
{
	const char *argv[] = {"echo", "a b", ""};
	const char *inputs[] = {"data.csv", "dir/"};
	const char *env[] = {"LANG=C", "EMPTY=", "UNSET"};
	larder_run_spec spec = LARDER_RUN_SPEC_INIT;

	spec.cwd = "/home/u/proj";
	spec.argv = argv;
	spec.argc = 3;
	spec.inputs = inputs;
	spec.ninputs = 2;
	spec.env = env;
	spec.nenv = 3;
	spec.version_cmd = "git rev-parse HEAD";
	spec.cache_failures = 1;
	key_is(&spec, "larder-run/2\n"
		      "d12:/home/u/proj\n"
		      "a4:echo\n"
		      "a3:a b\n"
		      "a0:\n"
		      "i8:data.csv\n"
		      "i4:dir/\n"
		      "e6:LANG=C\n"
		      "e6:EMPTY=\n"
		      "e5:UNSET\n"
		      "v18:git rev-parse HEAD\n"
		      "f14:cache-failures\n");
}

TEST(key_replaces_cwd_and_argv)
{
	const char *argv[] = {"ignored"};
	larder_run_spec spec;

	larder_run_spec_init(&spec);
	ASSERT_EQ(spec.version, LARDER_RUN_SPEC_VERSION);
	spec.key = "nightly";
	spec.argv = argv;
	spec.argc = 1;
	key_is(&spec, "larder-run/2\nk7:nightly\n");
}

TEST(lengths_frame_the_arguments)
{
	const char *one[] = {"sh", "a b"}, *two[] = {"sh", "a", "b"};
	larder_run_spec s1 = LARDER_RUN_SPEC_INIT, s2 = LARDER_RUN_SPEC_INIT;
	char *k1, *k2;
	size_t l1, l2;

	s1.cwd = s2.cwd = "/";
	s1.argv = one;
	s1.argc = 2;
	s2.argv = two;
	s2.argc = 3;
	ASSERT_EQ(larder_run_key(&k1, &l1, &s1), 0);
	ASSERT_EQ(larder_run_key(&k2, &l2, &s2), 0);
	ASSERT(l1 != l2 || memcmp(k1, k2, l1) != 0);
	larder_run_key_free(k1);
	larder_run_key_free(k2);
}

TEST(incomplete_specs_are_refused)
{
	const char *argv[] = {"true"}, *holes[] = {"a", NULL};
	larder_run_spec spec = LARDER_RUN_SPEC_INIT;
	char *key = (char *)"untouched";
	size_t len = 7;

	/* No key, no cwd. */
	spec.argv = argv;
	spec.argc = 1;
	ASSERT_EQ(larder_run_key(&key, &len, &spec), LARDER_EINVAL);
	ASSERT(key == NULL);
	ASSERT_EQ(len, 0);
	/* No command. */
	spec.cwd = "/";
	spec.argc = 0;
	ASSERT_EQ(larder_run_key(&key, &len, &spec), LARDER_EINVAL);
	/* A NULL in a list. */
	spec.argc = 1;
	spec.env = holes;
	spec.nenv = 2;
	ASSERT_EQ(larder_run_key(&key, &len, &spec), LARDER_EINVAL);
	spec.nenv = 1;
	ASSERT_EQ(larder_run_key(&key, &len, &spec), 0);
	larder_run_key_free(key);
	/* Another version of the struct. */
	spec.version = LARDER_RUN_SPEC_VERSION + 1;
	ASSERT_EQ(larder_run_key(&key, &len, &spec), LARDER_EINVAL);
	ASSERT_EQ(larder_run_key(&key, &len, NULL), LARDER_EINVAL);
	ASSERT_EQ(larder_run_key(NULL, &len, &spec), LARDER_EINVAL);
	larder_run_key_free(NULL);
}

/* Run the larder tool with argv (argv[0] is ignored), stdout to `out`;
 * returns its exit status. */
static int tool(const char *out, char *const argv[])
{
	const char *bin = getenv("LARDER_CLI");
	int st = 0;
	pid_t pid;

	ASSERT(bin != NULL);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(126);
		execv(bin, argv);
		_exit(127);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static size_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ASSERT(fd >= 0);
	n = read(fd, buf, size);
	ASSERT(n >= 0);
	close(fd);
	return (size_t)n;
}

TEST(larder_run_entry_is_found_under_the_library_key)
{
	char store[4096], out[4096], got[256], cwd[4096];
	const char *cmd[] = {"sh", "-c", "printf 'ran\\n'; exit 3", "a b"};
	const char *env[] = {"LARDER_T_SET=v", "LARDER_T_UNSET"};
	/* stdout, then the trailer: LRUNEXIT, exit 3, signal 0 (LE32). */
	const char want[] = "ran\nLRUNEXIT\3\0\0\0\0\0\0\0";
	larder_run_spec spec = LARDER_RUN_SPEC_INIT;
	char *key;
	size_t klen, n;

	snprintf(store, sizeof(store), "%s", test_path("store"));
	snprintf(out, sizeof(out), "%s", test_path("out"));
	ASSERT_EQ(chdir(test_dir()), 0);
	ASSERT(getcwd(cwd, sizeof(cwd)) != NULL);
	ASSERT_EQ(setenv("LARDER_T_SET", "v", 1), 0);
	ASSERT_EQ(unsetenv("LARDER_T_UNSET"), 0);
	ASSERT_EQ(tool(out, (char *[]){"larder", "--dir", store, "init", NULL}),
		  0);
	ASSERT_EQ(tool(out, (char *[]){"larder", "--dir", store, "run", "--env",
				       "LARDER_T_SET", "--env",
				       "LARDER_T_UNSET", "--cache-failures",
				       "--", (char *)cmd[0], (char *)cmd[1],
				       (char *)cmd[2], (char *)cmd[3], NULL}),
		  3);
	ASSERT_EQ(slurp(out, got, sizeof(got)), 4);

	spec.cwd = cwd;
	spec.argv = cmd;
	spec.argc = 4;
	spec.env = env;
	spec.nenv = 2;
	spec.cache_failures = 1;
	ASSERT_EQ(larder_run_key(&key, &klen, &spec), 0);
	ASSERT_EQ(strlen(key), klen); /* no NUL inside: it fits an argv */
	ASSERT_EQ(tool(out, (char *[]){"larder", "--dir", store, "get", "--",
				       key, NULL}),
		  0);
	n = slurp(out, got, sizeof(got));
	ASSERT_EQ(n, sizeof(want) - 1);
	ASSERT_MEM_EQ(got, want, n);
	larder_run_key_free(key);
}
