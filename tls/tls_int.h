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

struct tls_server {
	unsigned			 refs;
	mbedtls_entropy_context		 entropy;
	mbedtls_ctr_drbg_context	 drbg;
	mbedtls_ssl_config		 conf;
	mbedtls_ssl_ticket_context	 ticket;
	mbedtls_x509_crt		 ca;
	struct tls_keypair		*pairs;
	size_t				 npairs;
	int				 suites[24];	/* 0-terminated */
	int				 min_version;
	int				 max_version;
};

/* tls_cert.c */
int	tls_keypair_load(struct tls_keypair *kp, const char *cert,
	    const char *key, mbedtls_ctr_drbg_context *drbg, char *err,
	    size_t errlen);
void	tls_keypair_free(struct tls_keypair *kp);
bool	tls_keypair_matches(const struct tls_keypair *kp, const char *name);

#endif
