/* version: the gateway's version, for --version, the start-up line and
 * the metrics page. */
#ifndef FG_VERSION_H
#define FG_VERSION_H

#define FLASHGATE_VERSION "0.1.0"

#endif
