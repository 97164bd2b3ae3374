#!/bin/sh
# Regenerates the fixed vectors in this directory with ssh-keygen and
# openssl, using the commands AWS documents in "Verify the fingerprint of
# your key pair" (docs.aws.amazon.com/AWSEC2/latest/UserGuide/verify-keys.html).
# Keys are throw-away test keys. Run from this directory: sh gen.sh
set -eu
rm -f rsa* ed25519* dsa* ecdsa*

for bits in 1024 2048 3072 4096; do
	ssh-keygen -q -t rsa -b "$bits" -m PEM -N '' -C "rsa$bits@test" -f "rsa$bits"
	mv "rsa$bits" "rsa$bits.pem"
	# Imported RSA key: MD5 of the DER public key (SubjectPublicKeyInfo).
	openssl rsa -in "rsa$bits.pem" -pubout -outform DER 2>/dev/null | openssl md5 -c | sed 's/^.*= //' >"rsa$bits.md5"
done

# Created RSA key: SHA-1 of the DER PKCS#8 private key.
openssl pkcs8 -in rsa2048.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c | sed 's/^.*= //' >rsa2048.sha1

# The other public key forms EC2 accepts for RSA, all of rsa2048.
ssh-keygen -e -m RFC4716 -f rsa2048.pub >rsa2048.rfc4716
ssh-keygen -e -m PKCS8 -f rsa2048.pub >rsa2048.spki.pem
ssh-keygen -e -m PEM -f rsa2048.pub >rsa2048.pkcs1.pem
openssl rsa -in rsa2048.pem -pubout -outform DER 2>/dev/null | base64 -w 64 >rsa2048.der.b64

# ED25519, created or imported: SHA-256 of the public key blob, base64.
ssh-keygen -q -t ed25519 -N '' -C 'ed25519@test' -f ed25519
mv ed25519 ed25519.openssh
ssh-keygen -l -f ed25519.pub | awk '{print $2}' | sed 's/^SHA256://' >ed25519.sha256
ssh-keygen -e -m RFC4716 -f ed25519.pub >ed25519.rfc4716

# Key types EC2 refuses.
ssh-keygen -q -t dsa -N '' -f dsa && rm dsa
ssh-keygen -q -t ecdsa -b 256 -N '' -f ecdsa256 && ssh-keygen -e -m PKCS8 -f ecdsa256.pub >ecdsa256.spki.pem && rm ecdsa256
rm -f rsa1024.pem rsa3072.pem rsa4096.pem
