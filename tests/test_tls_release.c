/* test_tls_release: what pool/tls gives back after a handshake is not needed
 * afterwards. It includes pool/tls.c to reach each connection's WOLFSSL
 * object: to see that the handshake arrays are gone, and to make the server
 * side send what only comes after a handshake (a KeyUpdate, a late
 * NewSessionTicket). The established sessions must still read, write, take
 * both, resume with the late ticket, and close. */
#include "pool/tls.c"
#include "tests/testutil.h"
#include "tests/tls_testutil.h"

static size_t move(struct tls_conn *from, struct tls_conn *to)
{
	size_t len;
	const void *p = tls_conn_cipher_out(from, &len);
	size_t n = len ? tls_conn_feed(to, p, len) : 0;
	tls_conn_cipher_consume(from, n);
	return n;
}

static void pump(struct tls_conn *a, struct tls_conn *b)
{
	move(a, b);
	move(b, a);
}

static int handshake(struct tls_conn *c, struct tls_conn *s)
{
	int rc = TLS_AGAIN, rs = TLS_AGAIN;
	for (int i = 0; i < 50 && (rc == TLS_AGAIN || rs == TLS_AGAIN); i++) {
		if (rc == TLS_AGAIN)
			rc = tls_conn_handshake(c);
		if (rs == TLS_AGAIN)
			rs = tls_conn_handshake(s);
		pump(c, s);
		if (rc == TLS_ERROR || rs == TLS_ERROR)
			break;
	}
	return rc == 1 && rs == 1 ? 1 : rc == 1 ? rs : rc;
}

/* Reads what is readable now; returns bytes read or a TLS_ code other than
 * TLS_AGAIN. */
static ssize_t read_now(struct tls_conn *c, char *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t n = tls_conn_read(c, buf + got, cap - got);
		if (n > 0 && (got += (size_t)n) < cap)
			continue;
		return n > 0 || n == TLS_AGAIN ? (ssize_t)got : n;
	}
}

/* One line each way, as SMTP does; the reply is checked. */
static void exchange(struct tls_conn *c, struct tls_conn *s, const char *line)
{
	char b[128];
	size_t len = strlen(line);
	T_EQ_INT(tls_conn_write(c, line, len), len);
	pump(c, s);
	ssize_t n = read_now(s, b, sizeof(b));
	T_EQ_MEM(b, n > 0 ? (size_t)n : 0, line, len);
	T_EQ_INT(tls_conn_write(s, "250 ok\r\n", 8), 8);
	pump(c, s);
	n = read_now(c, b, sizeof(b));
	T_EQ_MEM(b, n > 0 ? (size_t)n : 0, "250 ok\r\n", 8);
}

/* The handshake arrays are gone on both sides: wolfSSL's client-random
 * getter reads them, and finds nothing once they are freed. */
static void check_released(struct tls_conn *c, struct tls_conn *s)
{
	unsigned char r[32];
	T_EQ_INT(wolfSSL_get_client_random(c->ssl, r, sizeof(r)), 0);
	T_EQ_INT(wolfSSL_get_client_random(s->ssl, r, sizeof(r)), 0);
}

static void test_tls13_after_release(void)
{
	struct tls_ctx_opts so = { .server = 1, .cert_file = "data/server.pem",
				   .key_file = "data/server.key" };
	struct tls_ctx_opts co = { .ca_file = "data/ca.pem" };
	struct tls_ctx *sc = ctx_or_die(&so), *cc = ctx_or_die(&co);

	struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
	struct tls_conn *c = tls_conn_new(cc, "mail.volley.test", NULL);
	T_EQ_INT(handshake(c, s), 1);
	T_EQ_STR(tls_conn_version(c), "TLSv1.3");
	check_released(c, s);
	exchange(c, s, "EHLO x\r\n");

	/* The server updates its keys and asks the client to update too:
	 * the client reads it, answers with its own KeyUpdate on its next
	 * write, and both directions go on. */
	T_EQ_INT(wolfSSL_update_keys(s->ssl), WOLFSSL_SUCCESS);
	exchange(c, s, "NOOP\r\n");
	exchange(c, s, "NOOP\r\n");

	/* A ticket sent now, long after the handshake, is taken and is the
	 * one the next connection resumes with. */
	T_EQ_INT(wolfSSL_send_SessionTicket(s->ssl), WOLFSSL_SUCCESS);
	exchange(c, s, "RSET\r\n");
	struct tls_saved *saved = tls_conn_save(c);
	T_TRUE(saved != NULL);

	/* close_notify still goes out and is seen. */
	tls_conn_close_notify(c);
	pump(c, s);
	char b[16];
	T_EQ_INT(tls_conn_read(s, b, sizeof(b)), TLS_CLOSED);
	tls_conn_free(c);
	tls_conn_free(s);

	s = tls_conn_new(sc, NULL, NULL);
	c = tls_conn_new(cc, "mail.volley.test", saved);
	T_EQ_INT(handshake(c, s), 1);
	T_EQ_INT(tls_conn_resumed(c), 1);
	check_released(c, s);
	exchange(c, s, "EHLO x\r\n");
	tls_conn_free(c);
	tls_conn_free(s);

	tls_saved_free(saved);
	tls_ctx_free(cc);
	tls_ctx_free(sc);
}

/* TLS 1.2 frees the arrays itself; releasing again is harmless, and the
 * session still works and resumes. */
static void test_tls12_after_release(void)
{
	struct tls_ctx_opts so = { .server = 1, .cert_file = "data/server.pem",
				   .key_file = "data/server.key", .max_version = 12 };
	struct tls_ctx_opts co = { .ca_file = "data/ca.pem" };
	struct tls_ctx *sc = ctx_or_die(&so), *cc = ctx_or_die(&co);
	struct tls_saved *saved = NULL;
	for (int round = 0; round < 2; round++) {
		struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
		struct tls_conn *c = tls_conn_new(cc, "localhost", saved);
		T_EQ_INT(handshake(c, s), 1);
		T_EQ_STR(tls_conn_version(c), "TLSv1.2");
		T_EQ_INT(tls_conn_resumed(c), round);
		check_released(c, s);
		exchange(c, s, "EHLO x\r\n");
		tls_saved_free(saved);
		saved = tls_conn_save(c);
		T_TRUE(saved != NULL);
		tls_conn_free(c);
		tls_conn_free(s);
	}
	tls_saved_free(saved);
	tls_ctx_free(cc);
	tls_ctx_free(sc);
}

int main(void)
{
	test_tls13_after_release();
	test_tls12_after_release();
	return t_done("tls_release");
}
