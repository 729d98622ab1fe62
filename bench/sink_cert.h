/* sink_cert: a self-signed certificate for volley sink, made with wolfSSL
 * when the user gives none: an ECDSA P-256 key and a certificate for
 * CN=localhost with subjectAltName DNS:localhost and IP:127.0.0.1, valid for
 * 30 days, marked as a CA so a client can trust it as its own anchor
 * (volley --ca FILE, swaks --tls-ca-path, Python's cafile). */
#ifndef VOLLEY_SINK_CERT_H
#define VOLLEY_SINK_CERT_H

#include <stddef.h>

/* Writes DIR/cert.pem and DIR/key.pem (the key readable by its owner only).
 * Returns 0, or -1 with a reason in err. */
int sink_cert_generate(const char *dir, char *err, size_t errlen);

#endif
