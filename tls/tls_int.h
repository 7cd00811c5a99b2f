/*
 * tls_int.h - what tls_mbedtls.c and tls_cert.c share.  Private to tls/.
 */
#ifndef MXD_TLS_INT_H
#define MXD_TLS_INT_H

#include "tls_compat.h"

#include <mbedtls/entropy.h>
#include <mbedtls/ssl_ticket.h>

#include "tls.h"

#define TLS_MAX_NAMES	32

struct tls_keypair {
	mbedtls_x509_crt	 crt;
	mbedtls_pk_context	 key;
	char			*names[TLS_MAX_NAMES];	/* lower case */
	size_t			 nnames;
	char			 desc[192];
};

/* Tickets under keys derived from a secret shared by processes. */
struct tls_tickets {
	unsigned char			 secret[32];
	uint32_t			 lifetime;	/* s, > 0 */
	mbedtls_ctr_drbg_context	*drbg;		/* for the IVs */
};

struct tls_server {
	unsigned			 refs;
	mbedtls_entropy_context		 entropy;
	mbedtls_ctr_drbg_context	 drbg;
	mbedtls_ssl_config		 conf;
	mbedtls_ssl_ticket_context	 ticket;
	struct tls_tickets		 tickets;	/* ticket_secret */
	mbedtls_x509_crt		 ca;
	struct tls_keypair		*pairs;
	size_t				 npairs;
	int				 suites[24];	/* 0-terminated */
	int				 min_version;
	int				 max_version;
};

/* tls_ticket.c: mbedtls_ssl_ticket_write_t / _parse_t on a tls_tickets */
int	tls_ticket_write(void *p, const mbedtls_ssl_session *session,
	    unsigned char *start, const unsigned char *end, size_t *tlen,
	    uint32_t *lifetime);
int	tls_ticket_parse(void *p, mbedtls_ssl_session *session,
	    unsigned char *buf, size_t len);

/* tls_cert.c */
int	tls_keypair_load(struct tls_keypair *kp, const char *cert,
	    const char *key, mbedtls_ctr_drbg_context *drbg, char *err,
	    size_t errlen);
void	tls_keypair_free(struct tls_keypair *kp);
bool	tls_keypair_matches(const struct tls_keypair *kp, const char *name);

#endif
