/* notify.h - the systemd readiness protocol (sd_notify(3)), written out:
 * one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named in
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). No
 * libsystemd. Without NOTIFY_SOCKET every call is a no-op.
 *
 *   READY=1                      after the listeners are up and workers run
 *   RELOADING=1 + MONOTONIC_USEC on SIGHUP, then READY=1 when done
 *   STOPPING=1                   on SIGTERM/SIGINT (drain begins)
 *
 * Main thread only.
 */
#ifndef RC_APP_NOTIFY_H
#define RC_APP_NOTIFY_H

/* Sends `state` (e.g. "READY=1\nSTATUS=serving"). Returns 0, 1 when there is
 * no NOTIFY_SOCKET, or -errno. */
int rc_notify(const char *state);

/* RELOADING=1 with MONOTONIC_USEC (systemd 253's Type=notify-reload wants it). */
int rc_notify_reloading(void);

#endif
