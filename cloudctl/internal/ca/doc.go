// Package ca is the cloud's own certificate authority: one RSA key and a
// self-signed X.509 certificate, as Eucalyptus kept them (cloud-cert.pem
// and cloud-pk.pem).
//
// The cloud certificate serves the AMI bundle tools. euca-bundle-image
// and ec2-bundle-image encrypt each image's AES key and IV for it with
// RSA PKCS#1 v1.5 (ec2_encrypted_key and ec2_encrypted_iv in the
// manifest), and cloudctl decrypts them with Decrypt or DecryptSessionKey
// when it registers the image. The CA also issues each user a key and a
// certificate (IssueUser) to sign bundles with: the cert-*.pem and
// pk-*.pem that `cloudctl admin credentials NAME` hands out.
//
// Keys are PEM: Load reads PKCS#1 ("RSA PRIVATE KEY") and PKCS#8
// ("PRIVATE KEY"); KeyPEM and IssueUser write PKCS#1, the traditional
// form that older tools expect.
package ca
