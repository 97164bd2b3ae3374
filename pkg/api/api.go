package api

// AccessKey is what cloudctl tells other daemons about an access key:
// GET /internal/v1/access-keys/{id}.
type AccessKey struct {
	AccessKeyID     string  `json:"access_key_id"`
	SecretAccessKey string  `json:"secret_access_key"`
	Active          bool    `json:"active"`
	Account         Account `json:"account"`
	// Component names the daemon a component key belongs to; such a key
	// has no account and opens only internal calls.
	Component string `json:"component,omitempty"`
}

// Account is an account as other daemons see it:
// GET /internal/v1/accounts?canonical_id=... or ?email=...
type Account struct {
	ID          string `json:"account_id"` // 12 digits
	CanonicalID string `json:"canonical_user_id"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email,omitempty"`
}

// Error is the body of a failed internal call.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Paths of the internal API.
const (
	PathAccessKeys = "/internal/v1/access-keys/"
	PathAccounts   = "/internal/v1/accounts"
)

// InternalService is the SigV4 service name of every internal call.
const InternalService = "cloud-internal"

// More internal paths. Those under cloudctl answer walrus; those under
// walrus answer cloudctl and the nodes.
const (
	// PathBundleKeys (cloudctl, POST BundleKeysRequest): decrypts an image
	// bundle's AES key and IV with the cloud's private key, which never
	// leaves cloudctl.
	PathBundleKeys = "/internal/v1/bundle-keys"
	// PathManifests (walrus, POST ManifestRequest): reads a bundle manifest
	// on behalf of an account, if the account may read it.
	PathManifests = "/internal/v1/manifests"
	// PathImageCache (walrus, POST CacheRequest): checks and caches the
	// decrypted image of a registered bundle.
	PathImageCache = "/internal/v1/image-cache"
	// PathImages (walrus, GET ?location=&digest=): the decrypted image,
	// with Range support, for nodes.
	PathImages = "/internal/v1/images"
)

// BundleKeysRequest carries a manifest's ec2_encrypted_key and
// ec2_encrypted_iv, hex as in the manifest.
type BundleKeysRequest struct {
	EncryptedKey string `json:"encrypted_key"`
	EncryptedIV  string `json:"encrypted_iv"`
}

// BundleKeysResponse is the decrypted key and IV, hex.
type BundleKeysResponse struct {
	Key string `json:"key"`
	IV  string `json:"iv"`
}

// ManifestRequest names a manifest ("bucket/key.manifest.xml") and the
// account asking for it.
type ManifestRequest struct {
	Location    string `json:"location"`
	CanonicalID string `json:"canonical_id"`
}

// ManifestResponse is the manifest's bytes and their SHA-256 (hex).
type ManifestResponse struct {
	Manifest []byte `json:"manifest"`
	Digest   string `json:"digest"`
}

// CacheRequest asks walrus to check and cache the image of the manifest
// at Location whose SHA-256 is Digest.
type CacheRequest struct {
	Location string `json:"location"`
	Digest   string `json:"digest"`
}

// CacheResponse describes a cached image.
type CacheResponse struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}
