/*
 * tls_compat.h - every difference between mbedTLS 2.28 and 3.6 lives here.
 *
 * The rest of tls/ calls the tls_compat_* wrappers and never tests a
 * version itself.  2.28 (Debian 12) is the floor: older releases are out
 * of support and miss APIs we use.  Struct fields are never touched on
 * either version (they are private in 3.x).
 */
#ifndef MXD_TLS_COMPAT_H
#define MXD_TLS_COMPAT_H

/* 3.x: version.h pulls build_info.h; 2.28: config.h.  First, always. */
#include <mbedtls/version.h>

#include <stdbool.h>
#include <stdint.h>

#if MBEDTLS_VERSION_NUMBER < 0x021C0000
#error "mxd needs mbedTLS 2.28 or later"
#endif

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#define TLS_COMPAT_V3 1
#else
#define TLS_COMPAT_V3 0
#endif

/* Once per process: 3.x needs PSA initialised (required on 3.6.0). */
static inline int
tls_compat_global_init(void)
{
#if TLS_COMPAT_V3
	return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
#else
	return 0;
#endif
}

static inline int
tls_compat_parse_keyfile(mbedtls_pk_context *pk, const char *path,
    mbedtls_ctr_drbg_context *drbg)
{
#if TLS_COMPAT_V3
	return mbedtls_pk_parse_keyfile(pk, path, NULL,
	    mbedtls_ctr_drbg_random, drbg);
#else
	(void)drbg;
	return mbedtls_pk_parse_keyfile(pk, path, NULL);
#endif
}

static inline int
tls_compat_check_pair(const mbedtls_pk_context *pub,
    const mbedtls_pk_context *prv, mbedtls_ctr_drbg_context *drbg)
{
#if TLS_COMPAT_V3
	return mbedtls_pk_check_pair(pub, prv, mbedtls_ctr_drbg_random, drbg);
#else
	(void)drbg;
	return mbedtls_pk_check_pair(pub, prv);
#endif
}

/* TLS 1.3 sends tickets on its own; follow the tickets switch. */
static inline void
tls_compat_tls13_tickets(mbedtls_ssl_config *conf, bool on)
{
#if TLS_COMPAT_V3 && defined(MBEDTLS_SSL_PROTO_TLS1_3) && \
    defined(MBEDTLS_SSL_SESSION_TICKETS)
	mbedtls_ssl_conf_new_session_tickets(conf, on ? 1 : 0);
#else
	(void)conf;
	(void)on;
#endif
}

/* 0x0301 (TLS 1.0) .. 0x0304 (TLS 1.3) */
static inline void
tls_compat_set_versions(mbedtls_ssl_config *conf, int min, int max)
{
#if TLS_COMPAT_V3
	mbedtls_ssl_conf_min_tls_version(conf,
	    (mbedtls_ssl_protocol_version)min);
	mbedtls_ssl_conf_max_tls_version(conf,
	    (mbedtls_ssl_protocol_version)max);
#else
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    min & 0xff);
	/* 2.28 has no usable TLS 1.3 server: cap at 1.2. */
	mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    (max > 0x0303 ? 0x0303 : max) & 0xff);
#endif
}

/* The highest version this build can speak. */
static inline int
tls_compat_max_version(void)
{
#if TLS_COMPAT_V3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
	return 0x0304;
#else
	return 0x0303;
#endif
}

/* The lowest version this build can speak. */
static inline int
tls_compat_min_version(void)
{
#if !TLS_COMPAT_V3 && defined(MBEDTLS_SSL_PROTO_TLS1)
	return 0x0301;
#elif !TLS_COMPAT_V3 && defined(MBEDTLS_SSL_PROTO_TLS1_1)
	return 0x0302;
#else
	return 0x0303;
#endif
}

/*
 * Key-exchange groups: x25519, secp256r1, secp384r1, in that order of
 * preference (not Debian's default, which picks secp521r1 first).
 */
#if TLS_COMPAT_V3
static const uint16_t tls_compat_groups[] = {
	MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};
#define tls_compat_set_groups(conf) \
	mbedtls_ssl_conf_groups((conf), tls_compat_groups)
#else
static const mbedtls_ecp_group_id tls_compat_groups[] = {
	MBEDTLS_ECP_DP_CURVE25519,
	MBEDTLS_ECP_DP_SECP256R1,
	MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_NONE,
};
#define tls_compat_set_groups(conf) \
	mbedtls_ssl_conf_curves((conf), tls_compat_groups)
#endif
/* The same three by their IANA numbers, for reading a ClientHello. */
static const uint16_t tls_compat_group_ids[] = { 29, 23, 24 };

/* A certificate's serial number from 16 octets. */
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>
static inline int
tls_compat_set_serial(mbedtls_x509write_cert *crt, const unsigned char *b,
    size_t n)
{
#if TLS_COMPAT_V3
	return mbedtls_x509write_crt_set_serial_raw(crt, (unsigned char *)b,
	    n);
#else
	mbedtls_mpi m;
	int r;

	mbedtls_mpi_init(&m);
	r = mbedtls_mpi_read_binary(&m, b, n);
	if (r == 0)
		r = mbedtls_x509write_crt_set_serial(crt, &m);
	mbedtls_mpi_free(&m);
	return r;
#endif
}

/* Error codes that were renamed or merged in 3.x. */
#if TLS_COMPAT_V3
#define TLS_COMPAT_ERR_DECODE		MBEDTLS_ERR_SSL_DECODE_ERROR
#define TLS_COMPAT_ERR_VERSION		MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION
#define TLS_COMPAT_ERR_HS_FAILURE	MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE
#else
#define TLS_COMPAT_ERR_DECODE		MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO
#define TLS_COMPAT_ERR_VERSION		MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION
#define TLS_COMPAT_ERR_HS_FAILURE	MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE
#endif

#endif
