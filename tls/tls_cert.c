/*
 * tls_cert.c - certificate and key pairs: loading, the names a pair
 * serves (for SNI), the self-signed certificate of the zero-config
 * default, and the wrong ones a test harness presents on purpose.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tls_int.h"

#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>

static void
lib_error(char *err, size_t errlen, const char *what, const char *path,
    int r)
{
	char msg[128];

	mbedtls_strerror(r, msg, sizeof(msg));
	snprintf(err, errlen, "%s %s: %s", what, path, msg);
}

static void
add_name(struct tls_keypair *kp, const unsigned char *p, size_t n)
{
	char *s;
	size_t i;

	if (kp->nnames >= TLS_MAX_NAMES || n == 0 || n > 253)
		return;
	s = malloc(n + 1);
	if (s == NULL)
		return;
	for (i = 0; i < n; i++)
		s[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
	s[n] = 0;
	kp->names[kp->nnames++] = s;
}

/* dNSName SANs, or the subject CN when there are none (RFC 6125 6.4.4). */
static void
collect_names(struct tls_keypair *kp)
{
	const mbedtls_x509_sequence *seq;
	const mbedtls_x509_name *dn;

	for (seq = &kp->crt.subject_alt_names; seq != NULL &&
	    seq->buf.p != NULL; seq = seq->next) {
		mbedtls_x509_subject_alternative_name san;

		memset(&san, 0, sizeof(san));
		if (mbedtls_x509_parse_subject_alt_name(&seq->buf, &san) != 0)
			continue;
		if (san.type == MBEDTLS_X509_SAN_DNS_NAME)
			add_name(kp, san.san.unstructured_name.p,
			    san.san.unstructured_name.len);
#if TLS_COMPAT_V3
		mbedtls_x509_free_subject_alt_name(&san);
#endif
	}
	if (kp->nnames > 0)
		return;
	for (dn = &kp->crt.subject; dn != NULL; dn = dn->next)
		if (dn->oid.p != NULL &&
		    MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid) == 0)
			add_name(kp, dn->val.p, dn->val.len);
}

int
tls_keypair_load(struct tls_keypair *kp, const char *cert, const char *key,
    mbedtls_ctr_drbg_context *drbg, char *err, size_t errlen)
{
	const mbedtls_x509_time *to;
	int r;

	memset(kp, 0, sizeof(*kp));
	mbedtls_x509_crt_init(&kp->crt);
	mbedtls_pk_init(&kp->key);
	if ((r = mbedtls_x509_crt_parse_file(&kp->crt, cert)) != 0) {
		if (r > 0)
			snprintf(err, errlen, "tls_cert %s: %d certificates "
			    "could not be parsed", cert, r);
		else
			lib_error(err, errlen, "tls_cert", cert, r);
		return -1;
	}
	if ((r = tls_compat_parse_keyfile(&kp->key, key, drbg)) != 0) {
		lib_error(err, errlen, "tls_key", key, r);
		return -1;
	}
	if ((r = tls_compat_check_pair(&kp->crt.pk, &kp->key, drbg)) != 0) {
		snprintf(err, errlen, "tls_key %s does not match the "
		    "certificate in %s", key, cert);
		return -1;
	}
	collect_names(kp);
	to = &kp->crt.valid_to;
	snprintf(kp->desc, sizeof(kp->desc),
	    "%s-%zu name=%s names=%zu expires=%04d-%02d-%02d",
	    mbedtls_pk_get_name(&kp->key), mbedtls_pk_get_bitlen(&kp->key),
	    kp->nnames > 0 ? kp->names[0] : "-", kp->nnames, to->year,
	    to->mon, to->day);
	return 0;
}

void
tls_keypair_free(struct tls_keypair *kp)
{
	size_t i;

	for (i = 0; i < kp->nnames; i++)
		free(kp->names[i]);
	kp->nnames = 0;
	mbedtls_x509_crt_free(&kp->crt);
	mbedtls_pk_free(&kp->key);
}

/* Exact, or "*.example.com" matching one leftmost label (RFC 6125 6.4.3). */
bool
tls_keypair_matches(const struct tls_keypair *kp, const char *name)
{
	const char *dot;
	size_t i;

	for (i = 0; i < kp->nnames; i++) {
		const char *n = kp->names[i];

		if (strcmp(n, name) == 0)
			return true;
		if (n[0] == '*' && n[1] == '.' &&
		    (dot = strchr(name, '.')) != NULL && dot != name &&
		    strcmp(dot, n + 1) == 0)
			return true;
	}
	return false;
}

/* ---- certificates we make: the zero-config one, a harness's ------------ */

static int
write_file(const char *path, const unsigned char *data, size_t len,
    mode_t mode, char *err, size_t errlen)
{
	char tmp[4096];
	int fd;
	ssize_t w;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	while (len > 0) {
		w = write(fd, data, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			goto fail;
		}
		data += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	unlink(tmp);
	return -1;
}

/*
 * subjectAltName = SEQUENCE { [2] IMPLICIT IA5String name }, written by
 * hand: 2.28 has no SAN writer.
 */
static int
san_der(const char *name, unsigned char *buf, size_t size,
    unsigned char **start)
{
	unsigned char *p = buf + size;
	size_t n = strlen(name);
	int len = 0, r;

	if (n > 253)
		return -1;
	if ((r = mbedtls_asn1_write_raw_buffer(&p, buf,
	    (const unsigned char *)name, n)) < 0)
		return r;
	len += r;
	if ((r = mbedtls_asn1_write_len(&p, buf, n)) < 0)
		return r;
	len += r;
	if ((r = mbedtls_asn1_write_tag(&p, buf,
	    MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) < 0)
		return r;
	len += r;
	if ((r = mbedtls_asn1_write_len(&p, buf, (size_t)len)) < 0)
		return r;
	len += r;
	if ((r = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED |
	    MBEDTLS_ASN1_SEQUENCE)) < 0)
		return r;
	len += r;
	*start = p;
	return len;
}

/* What one made certificate is: its name, validity, and issuer. */
struct cert_spec {
	const char	*name;		/* CN and the one dNSName SAN */
	time_t		 not_before;
	time_t		 not_after;
	bool		 foreign_issuer; /* signed by a throwaway CA */
};

static int
gen_key(mbedtls_pk_context *key, mbedtls_ctr_drbg_context *drbg)
{
	int r;

	if ((r = mbedtls_pk_setup(key,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0)
		return r;
	return mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1,
	    mbedtls_pk_ec(*key), mbedtls_ctr_drbg_random, drbg);
}

static void
x509_time(time_t t, char out[16])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/*
 * An ECDSA P-256 key and a certificate for it, written atomically (the
 * key mode 0600).  Self-signed, or signed by a CA key made here and
 * thrown away: then neither the CA's key nor its certificate exists
 * anywhere, and the leaf verifies against nothing.
 */
static int
make_pair(const char *cert_path, const char *key_path,
    const struct cert_spec *spec, char *err, size_t errlen)
{
	static const char pers[] = "mxd certificate";
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context key, ca_key;
	mbedtls_x509write_cert crt;
	unsigned char serial[16], san[300], *sanp = NULL;
	unsigned char *pem = NULL;
	char subject[300], issuer[300], from[16], to[16];
	int r, sanlen, rc = -1;
	const size_t pemsize = 8192;

	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_pk_init(&key);
	mbedtls_pk_init(&ca_key);
	mbedtls_x509write_crt_init(&crt);
	pem = calloc(1, pemsize);
	if (pem == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((r = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
	    (const unsigned char *)pers, sizeof(pers) - 1)) != 0 ||
	    (r = gen_key(&key, &drbg)) != 0 ||
	    (spec->foreign_issuer && (r = gen_key(&ca_key, &drbg)) != 0) ||
	    (r = mbedtls_ctr_drbg_random(&drbg, serial, sizeof(serial))) != 0) {
		lib_error(err, errlen, "certificate", "key", r);
		goto out;
	}
	serial[0] &= 0x7f;	/* a positive INTEGER */
	serial[0] |= 0x01;
	x509_time(spec->not_before, from);
	x509_time(spec->not_after, to);
	snprintf(subject, sizeof(subject), "CN=%s", spec->name);
	if (spec->foreign_issuer)
		snprintf(issuer, sizeof(issuer), "CN=mxd throwaway CA %02x%02x"
		    "%02x%02x,O=mxd test", serial[4], serial[5], serial[6],
		    serial[7]);
	else
		snprintf(issuer, sizeof(issuer), "%s", subject);

	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, &key);
	mbedtls_x509write_crt_set_issuer_key(&crt,
	    spec->foreign_issuer ? &ca_key : &key);
	sanlen = san_der(spec->name, san, sizeof(san), &sanp);
	if ((r = mbedtls_x509write_crt_set_subject_name(&crt, subject)) != 0 ||
	    (r = mbedtls_x509write_crt_set_issuer_name(&crt, issuer)) != 0 ||
	    (r = tls_compat_set_serial(&crt, serial, sizeof(serial))) != 0 ||
	    (r = mbedtls_x509write_crt_set_validity(&crt, from, to)) != 0 ||
	    (r = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1)) ||
	    (r = mbedtls_x509write_crt_set_key_usage(&crt,
	    MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) != 0 ||
	    (sanlen > 0 && (r = mbedtls_x509write_crt_set_extension(&crt,
	    MBEDTLS_OID_SUBJECT_ALT_NAME,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, sanp,
	    (size_t)sanlen)) != 0)) {
		lib_error(err, errlen, "certificate", spec->name, r);
		goto out;
	}
	if ((r = mbedtls_pk_write_key_pem(&key, pem, pemsize)) != 0) {
		lib_error(err, errlen, "certificate", "key", r);
		goto out;
	}
	if (write_file(key_path, pem, strlen((char *)pem), 0600, err,
	    errlen) != 0)
		goto out;
	if ((r = mbedtls_x509write_crt_pem(&crt, pem, pemsize,
	    mbedtls_ctr_drbg_random, &drbg)) != 0) {
		lib_error(err, errlen, "certificate", spec->name, r);
		goto out;
	}
	if (write_file(cert_path, pem, strlen((char *)pem), 0644, err,
	    errlen) != 0)
		goto out;
	rc = 0;
out:
	if (pem != NULL)
		mbedtls_platform_zeroize(pem, pemsize);
	free(pem);
	mbedtls_x509write_crt_free(&crt);
	mbedtls_pk_free(&ca_key);
	mbedtls_pk_free(&key);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return rc;
}

int
tls_make_selfsigned(const char *cert_path, const char *key_path,
    const char *hostname, char *err, size_t errlen)
{
	time_t now = time(NULL);
	struct cert_spec spec = {
		.name = hostname,
		.not_before = now - 86400,
		.not_after = now + 10 * 365 * 86400L,
	};

	return make_pair(cert_path, key_path, &spec, err, errlen);
}

/* ---- certificates made wrong on purpose, for a harness ---------------- */

int
tls_make_variant(const char *cert_path, const char *key_path,
    const char *hostname, enum tls_cert_variant v, char *err, size_t errlen)
{
	time_t now = time(NULL);
	struct cert_spec spec = {
		.name = hostname,
		.not_before = now - 86400,
		.not_after = now + 10 * 365 * 86400L,
	};

	switch (v) {
	case TLS_CERT_EXPIRED:
		spec.not_before = now - 2 * 365 * 86400L;
		spec.not_after = now - 86400;
		break;
	case TLS_CERT_WRONG_NAME:
		spec.name = "wrong-name.invalid";
		break;
	case TLS_CERT_UNTRUSTED:
		spec.foreign_issuer = true;
		break;
	default:
		snprintf(err, errlen, "unknown certificate variant %d",
		    (int)v);
		return -1;
	}
	return make_pair(cert_path, key_path, &spec, err, errlen);
}
