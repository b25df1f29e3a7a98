/*
 * notify: tells the service manager how start-up, reloads and the drain go
 * (systemd's Type=notify), by its documented protocol: one datagram to the
 * AF_UNIX socket named in $NOTIFY_SOCKET (sd_notify(3)). Written here rather
 * than linking libsystemd: four messages, one sendto each.
 *
 * Owns: the socket. Does not own: when the process is ready or reloading
 * (main says).
 */
#ifndef FG_NOTIFY_H
#define FG_NOTIFY_H

/* Sends "READY=1", "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1" or a
 * "STATUS=..." line. Without $NOTIFY_SOCKET, does nothing; a failure is
 * logged once and otherwise ignored (the service manager's timeout then
 * says it). */
void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *status);

#endif
