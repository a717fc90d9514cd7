/*
 * vfork-and-exec for Node, built by the Makefile into build/vfork-spawn.node
 * and used by src/media/native-spawner.ts (which explains why).
 *
 * spawn(file, argv) -> [pid, stdoutFd, stderrFd]: stdin is /dev/null, stdout
 * and stderr are fresh pipes whose read ends (close-on-exec) go to the caller,
 * every signal is reset to its default and unblocked in the child, and the
 * child is SIGKILLed if this process dies.
 * reap(pid) -> undefined while the child runs, else [exitCode | -1, signal | 0].
 * Nothing else: time limits, output limits and kills are the caller's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <node_api.h>

extern char **environ;

#define CHECK(call) do { if ((call) != napi_ok) return NULL; } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static char *copy_string(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *text = malloc(length + 1);
  if (!text) return NULL;
  if (napi_get_value_string_utf8(env, value, text, length + 1, &length) != napi_ok) { free(text); return NULL; }
  if (strlen(text) != length) { free(text); return NULL; } /* an embedded NUL */
  return text;
}

static void free_argv(char **argv) {
  if (!argv) return;
  for (char **p = argv; *p; p++) free(*p);
  free(argv);
}

/*
 * Starts `file` (searched in PATH when it has no slash) with stdin on /dev/null
 * and stdout/stderr on out_w/err_w. Returns 0 and the pid, or an errno.
 *
 * vfork, as glibc's posix_spawn does it (the child borrows the parent's memory
 * and the parent thread waits until the exec), plus one thing posix_spawn
 * cannot do: PR_SET_PDEATHSIG, so that a tool dies with a worker that is
 * killed outright instead of running on as an orphan. Signals stay blocked
 * until the child has reset every handler: a handler of the parent must never
 * run in the child, which shares the parent's memory.
 */
static int start_child(const char *file, char *const argv[], int out_w, int err_w, pid_t *pid_out) {
  sigset_t all, none, old;
  sigfillset(&all);
  sigemptyset(&none);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  volatile int child_errno = 0;
  pid_t parent = getpid();
  pid_t pid = vfork();
  if (pid == 0) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
      struct sigaction current;
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      if (sigaction(sig, NULL, &current) == 0 && current.sa_handler != SIG_DFL) sigaction(sig, &dfl, NULL);
    }
    int null_fd = open("/dev/null", O_RDONLY);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || null_fd < 0
        || dup2(null_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) {
      child_errno = errno ? errno : ECHILD;
      _exit(127);
    }
    if (null_fd > 2) close(null_fd);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(file, argv, environ);
    child_errno = errno;
    _exit(127);
  }
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) return fork_errno;
  if (child_errno) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return child_errno;
  }
  *pid_out = pid;
  return 0;
}

/* spawn(file, argv) → [pid, stdoutFd, stderrFd]. */
static napi_value spawn_piped(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  uint32_t count;
  bool is_array;
  if (argc != 2 || napi_is_array(env, args[1], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "spawn(file, argv[])");
    return NULL;
  }
  CHECK(napi_get_array_length(env, args[1], &count));
  char *file = copy_string(env, args[0]);
  char **argv = calloc(count + 1, sizeof *argv);
  bool ok = file && argv;
  for (uint32_t i = 0; ok && i < count; i++) {
    napi_value item;
    ok = napi_get_element(env, args[1], i, &item) == napi_ok && (argv[i] = copy_string(env, item)) != NULL;
  }
  if (!ok) {
    free(file);
    free_argv(argv);
    napi_throw_type_error(env, NULL, "spawn: file and argv must be strings without NUL");
    return NULL;
  }

  int out[2] = { -1, -1 }, err[2] = { -1, -1 };
  pid_t pid = -1;
  const char *step = "pipe";
  int status = 0;
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) status = errno;
  if (!status) {
    step = "spawn";
    status = start_child(file, argv, out[1], err[1], &pid);
  }
  free(file);
  free_argv(argv);
  if (out[1] >= 0) close(out[1]);
  if (err[1] >= 0) close(err[1]);
  if (status) {
    if (out[0] >= 0) close(out[0]);
    if (err[0] >= 0) close(err[0]);
    return throw_errno(env, step, status);
  }
  napi_value result, value;
  CHECK(napi_create_array_with_length(env, 3, &result));
  int numbers[3] = { pid, out[0], err[0] };
  for (uint32_t i = 0; i < 3; i++) {
    CHECK(napi_create_int32(env, numbers[i], &value));
    CHECK(napi_set_element(env, result, i, value));
  }
  return result;
}

/* reap(pid) → undefined while it runs, else [exitCode | -1, signal | 0]. */
static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  int32_t pid;
  CHECK(napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  if (argc != 1 || napi_get_value_int32(env, arg, &pid) != napi_ok || pid <= 0) {
    napi_throw_type_error(env, NULL, "reap(pid)");
    return NULL;
  }
  int status;
  pid_t done;
  do done = waitpid(pid, &status, WNOHANG); while (done < 0 && errno == EINTR);
  if (done < 0) return throw_errno(env, "waitpid", errno);
  napi_value result = NULL, value;
  if (done == 0) {
    CHECK(napi_get_undefined(env, &result));
    return result;
  }
  int numbers[2] = { WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0 };
  CHECK(napi_create_array_with_length(env, 2, &result));
  for (uint32_t i = 0; i < 2; i++) {
    CHECK(napi_create_int32(env, numbers[i], &value));
    CHECK(napi_set_element(env, result, i, value));
  }
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
    { "spawn", NULL, spawn_piped, NULL, NULL, NULL, napi_default, NULL },
    { "reap", NULL, reap, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, 2, methods) != napi_ok) return NULL;
  return exports;
}
