package tools

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// DefaultRegion is the region used when none is configured.
const DefaultRegion = "us-east-1"

// ec2APIVersion is the EC2 Query API version of the raw calls.
const ec2APIVersion = "2016-11-15"

// ErrNoCredentials reports that no access key was configured.
var ErrNoCredentials = errors.New("no credentials: pass -access-key and -secret-key or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (source an eucarc)")

// Config says how the tools reach the cloud.
type Config struct {
	// EC2URL and S3URL are the endpoints, such as http://HOST:8773/ and
	// http://HOST:8776; empty means AWS's endpoints for Region.
	EC2URL, S3URL string
	// Region signs the requests; DefaultRegion if empty.
	Region string
	// AccessKeyID, SecretAccessKey and SessionToken are the credentials.
	AccessKeyID, SecretAccessKey, SessionToken string
	// VirtualHost addresses buckets as BUCKET.HOST rather than HOST/BUCKET.
	VirtualHost bool
	// HTTPClient sends the requests; http.DefaultClient's transport if nil.
	HTTPClient *http.Client
	// Log receives progress lines; nothing is written if nil.
	Log io.Writer
}

// Client runs the verbs that talk to S3 and EC2.
type Client struct {
	cfg  Config
	s3   *s3.Client
	ec2  *ec2.Client
	http *http.Client
	log  io.Writer
}

// New returns a client for cfg. It fails when cfg has no credentials or an
// endpoint is not an http(s) URL.
func New(cfg Config) (*Client, error) {
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return nil, ErrNoCredentials
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	for _, e := range []struct{ name, u string }{{"EC2 URL", cfg.EC2URL}, {"S3 URL", cfg.S3URL}} {
		if e.u == "" {
			continue
		}
		u, err := url.Parse(e.u)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s %q is not an http:// or https:// URL", e.name, e.u)
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	creds := credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)
	s3o := s3.Options{
		Region:       cfg.Region,
		Credentials:  creds,
		HTTPClient:   hc,
		UsePathStyle: !cfg.VirtualHost,
		// Only the checksums S3 requires: other S3 implementations may
		// not know the newer ones.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	ec2o := ec2.Options{Region: cfg.Region, Credentials: creds, HTTPClient: hc}
	if cfg.S3URL != "" {
		s3o.BaseEndpoint = aws.String(cfg.S3URL)
	}
	if cfg.EC2URL != "" {
		ec2o.BaseEndpoint = aws.String(cfg.EC2URL)
	}
	return &Client{cfg: cfg, s3: s3.New(s3o), ec2: ec2.New(ec2o), http: hc, log: log}, nil
}

func (c *Client) logf(format string, args ...any) {
	fmt.Fprintf(c.log, format+"\n", args...)
}

// APIError is an error answer of S3 or EC2.
type APIError struct {
	Op      string // what was being done
	Code    string
	Message string
	Err     error // the SDK's error
}

// Error is "OP: CODE: MESSAGE".
func (e *APIError) Error() string {
	if e.Message == "" {
		return e.Op + ": " + e.Code
	}
	return e.Op + ": " + e.Code + ": " + e.Message
}

// Unwrap returns the SDK's error.
func (e *APIError) Unwrap() error { return e.Err }

// wrap makes an SDK error readable: the operation, the AWS code and its
// message, instead of the SDK's account of the HTTP exchange.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return &APIError{Op: op, Code: ae.ErrorCode(), Message: ae.ErrorMessage(), Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// ec2ErrorDoc is the EC2 Query API's error document.
type ec2ErrorDoc struct {
	Errors []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
}

// callEC2 sends an EC2 Query API action that the SDK does not know,
// signed with SigV4, and decodes the answer into out.
func (c *Client) callEC2(ctx context.Context, action string, params url.Values, out any) error {
	if c.cfg.EC2URL == "" {
		return fmt.Errorf("%s: no EC2 URL: pass -ec2-url or set EC2_URL", action)
	}
	form := url.Values{"Action": {action}, "Version": {ec2APIVersion}}
	for k, v := range params {
		form[k] = v
	}
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.EC2URL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	rq.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if c.cfg.SessionToken != "" {
		rq.Header.Set("X-Amz-Security-Token", c.cfg.SessionToken)
	}
	if err := sigv4.Sign(rq, c.cfg.AccessKeyID, c.cfg.SecretAccessKey, c.cfg.Region, "ec2", "", time.Now()); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	resp, err := c.http.Do(rq)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: read the answer: %w", action, err)
	}
	if resp.StatusCode != http.StatusOK {
		var doc ec2ErrorDoc
		if xml.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
			return &APIError{Op: action, Code: doc.Errors[0].Code, Message: doc.Errors[0].Message}
		}
		return fmt.Errorf("%s: HTTP %s", action, resp.Status)
	}
	if err := xml.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode the answer: %w", action, err)
	}
	return nil
}
