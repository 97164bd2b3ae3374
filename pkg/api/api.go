package api

// AccessKey is what cloudctl tells other daemons about an access key:
// GET /internal/v1/access-keys/{id}.
type AccessKey struct {
	AccessKeyID     string  `json:"access_key_id"`
	SecretAccessKey string  `json:"secret_access_key"`
	Active          bool    `json:"active"`
	Account         Account `json:"account"`
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
