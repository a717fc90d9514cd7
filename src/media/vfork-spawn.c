/*
 * vfork-and-exec for Node, built by the Makefile into build/vfork-spawn.node
 * and used by src/media/native-spawner.ts (which explains why).
 *
 * spawn(file, argv) -> Promise<[pid, stdoutFd, stderrFd]>, started off the
 * main thread: stdin is /dev/null, stdout
 * and stderr are fresh pipes whose read ends (close-on-exec) go to the caller,
 * every signal is reset to its default and unblocked in the child, the
 * child leads a process group of its own (whose id is its pid: a kill of
 * -pid reaches whatever it started too), and it is SIGKILLed if this
 * process dies.
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
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || null_fd < 0 || setpgid(0, 0) != 0
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

/*
 * One spawn, run on a libuv pool thread: the thread that vforks waits until
 * the child has exec'd, and on a busy machine the child may first wait for a
 * CPU (a millisecond on average and 3 ms at p90 in a loaded worker, measured),
 * which on the main thread stalled every other job's I/O.
 * PR_SET_PDEATHSIG follows the thread that forked, and pool threads live as
 * long as the process.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *file;
  char **argv;
  const char *step;
  int status;
  pid_t pid;
  int out_r, err_r;
} spawn_job;

static void free_job(napi_env env, spawn_job *job) {
  if (job->work) napi_delete_async_work(env, job->work);
  free(job->file);
  free_argv(job->argv);
  free(job);
}

static void spawn_execute(napi_env env, void *data) {
  (void)env;
  spawn_job *job = data;
  int out[2] = { -1, -1 }, err[2] = { -1, -1 };
  job->step = "pipe";
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) job->status = errno;
  if (!job->status) {
    job->step = "spawn";
    job->status = start_child(job->file, job->argv, out[1], err[1], &job->pid);
  }
  if (out[1] >= 0) close(out[1]);
  if (err[1] >= 0) close(err[1]);
  if (job->status) {
    if (out[0] >= 0) close(out[0]);
    if (err[0] >= 0) close(err[0]);
    return;
  }
  job->out_r = out[0];
  job->err_r = err[0];
}

static void spawn_complete(napi_env env, napi_status work_status, void *data) {
  spawn_job *job = data;
  napi_value outcome = NULL, value;
  bool ok = work_status == napi_ok && !job->status;
  if (ok) {
    int numbers[3] = { job->pid, job->out_r, job->err_r };
    ok = napi_create_array_with_length(env, 3, &outcome) == napi_ok;
    for (uint32_t i = 0; ok && i < 3; i++) {
      ok = napi_create_int32(env, numbers[i], &value) == napi_ok && napi_set_element(env, outcome, i, value) == napi_ok;
    }
    if (ok) napi_resolve_deferred(env, job->deferred, outcome);
  }
  if (!ok) {
    char message[256];
    snprintf(message, sizeof message, "%s: %s", job->step, strerror(job->status ? job->status : EIO));
    napi_value text;
    if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) == napi_ok && napi_create_error(env, NULL, text, &outcome) == napi_ok) {
      napi_reject_deferred(env, job->deferred, outcome);
    }
  }
  free_job(env, job);
}

/* spawn(file, argv) → Promise<[pid, stdoutFd, stderrFd]>. */
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
  spawn_job *job = calloc(1, sizeof *job);
  bool ok = job != NULL;
  if (ok) {
    job->file = copy_string(env, args[0]);
    job->argv = calloc(count + 1, sizeof *job->argv);
    ok = job->file && job->argv;
  }
  for (uint32_t i = 0; ok && i < count; i++) {
    napi_value item;
    ok = napi_get_element(env, args[1], i, &item) == napi_ok && (job->argv[i] = copy_string(env, item)) != NULL;
  }
  if (!ok) {
    if (job) free_job(env, job);
    napi_throw_type_error(env, NULL, "spawn: file and argv must be strings without NUL");
    return NULL;
  }
  napi_value promise, name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok
      || napi_create_string_utf8(env, "vfork-spawn", NAPI_AUTO_LENGTH, &name) != napi_ok
      || napi_create_async_work(env, NULL, name, spawn_execute, spawn_complete, job, &job->work) != napi_ok
      || napi_queue_async_work(env, job->work) != napi_ok) {
    /* A promise already made is left pending: the throw is what the caller sees. */
    free_job(env, job);
    napi_throw_error(env, NULL, "spawn: cannot queue the spawn");
    return NULL;
  }
  return promise;
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
