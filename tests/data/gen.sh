#!/bin/sh
# Regenerates the test PKI in this folder (see README.md). Run from tests/data.
set -eu
days=36500

# Test CA (ECDSA P-256).
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -new -x509 -key ca.key -sha256 -days $days -subj "/CN=volley test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

# Server certificate signed by the CA.
openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
cat > server.ext <<'X'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:mail.volley.test,IP:127.0.0.1
X
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x1001 \
	-sha256 -days $days -extfile server.ext -out server.pem

# A self-signed certificate under no CA.
openssl ecparam -name prime256v1 -genkey -noout -out selfsigned.key
openssl req -new -x509 -key selfsigned.key -sha256 -days $days -subj "/CN=localhost" \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out selfsigned.pem

# A certificate from the same CA that expired in 2001, for the "expired" error
# (openssl ca is the CLI that takes explicit start and end dates).
openssl ecparam -name prime256v1 -genkey -noout -out expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
rm -rf ca.db && mkdir ca.db && : > ca.db/index.txt && echo 2001 > ca.db/serial
cat > ca.cnf <<'X'
[ca]
default_ca = test_ca
[test_ca]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
[ext]
basicConstraints=critical,CA:FALSE
subjectAltName=DNS:localhost,IP:127.0.0.1
X
openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key -extensions ext \
	-startdate 20000101000000Z -enddate 20010101000000Z -in expired.csr -out expired.pem

rm -rf server.csr server.ext expired.csr ca.cnf ca.db
