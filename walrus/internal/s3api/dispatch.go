package s3api

import (
	"net/http"

	"github.com/koala-cloud/koala/pkg/awserr"
)

// unconfigured names the bucket sub-resources walrus does not support
// configuring, with the error S3 gives when one is read but not set.
var unconfigured = map[string]string{
	"policy":            "NoSuchBucketPolicy",
	"cors":              "NoSuchCORSConfiguration",
	"lifecycle":         "NoSuchLifecycleConfiguration",
	"tagging":           "NoSuchTagSet",
	"website":           "NoSuchWebsiteConfiguration",
	"encryption":        "ServerSideEncryptionConfigurationNotFoundError",
	"publicAccessBlock": "NoSuchPublicAccessBlockConfiguration",
	"ownershipControls": "OwnershipControlsNotFoundError",
	"object-lock":       "ObjectLockConfigurationNotFoundError",
	"replication":       "ReplicationConfigurationNotFoundError",
}

// unbuilt names sub-resources no operation of walrus serves.
var unbuilt = []string{
	"analytics", "inventory", "metrics", "intelligent-tiering", "policyStatus",
	"torrent", "restore", "select", "retention", "legal-hold",
	"object-lambda", "session", "renameObject",
}

func notImplemented(what string) error {
	return awserr.New("NotImplemented", what+" is not implemented by walrus.")
}

func (a *API) dispatch(rq *request) error {
	q, m := rq.q, rq.r.Method
	for _, sub := range unbuilt {
		if q.Has(sub) {
			rq.op = "Unsupported"
			return notImplemented("The " + sub + " sub-resource")
		}
	}
	if rq.bucket == "" {
		if m == http.MethodGet {
			rq.op = "ListBuckets"
			return a.listBuckets(rq)
		}
		rq.op = "Service"
		return awserr.New("MethodNotAllowed", "")
	}
	if rq.key == "" {
		return a.bucketOp(rq)
	}
	return a.objectOp(rq)
}

func (a *API) bucketOp(rq *request) error {
	q := rq.q
	for sub, code := range unconfigured {
		if !q.Has(sub) {
			continue
		}
		rq.op = "BucketConfig"
		return a.bucketConfig(rq, sub, code)
	}
	switch rq.r.Method {
	case http.MethodGet:
		switch {
		case q.Has("location"):
			rq.op = "GetBucketLocation"
			return a.getBucketLocation(rq)
		case q.Has("acl"):
			rq.op = "GetBucketAcl"
			return a.getBucketACL(rq)
		case q.Has("versioning"):
			rq.op = "GetBucketVersioning"
			return a.emptyConfig(rq, "VersioningConfiguration")
		case q.Has("uploads"):
			rq.op = "ListMultipartUploads"
			return a.listUploads(rq)
		case q.Has("versions"):
			rq.op = "ListObjectVersions"
			return a.listVersions(rq)
		case q.Has("logging"):
			rq.op = "GetBucketLogging"
			return a.emptyConfig(rq, "BucketLoggingStatus")
		case q.Has("notification"):
			rq.op = "GetBucketNotification"
			return a.emptyConfig(rq, "NotificationConfiguration")
		case q.Has("accelerate"):
			rq.op = "GetBucketAccelerate"
			return a.emptyConfig(rq, "AccelerateConfiguration")
		case q.Has("requestPayment"):
			rq.op = "GetBucketRequestPayment"
			return a.getRequestPayment(rq)
		case q.Get("list-type") == "2":
			rq.op = "ListObjectsV2"
			return a.listObjects(rq, true)
		}
		rq.op = "ListObjects"
		return a.listObjects(rq, false)
	case http.MethodHead:
		rq.op = "HeadBucket"
		return a.headBucket(rq)
	case http.MethodPut:
		switch {
		case q.Has("acl"):
			rq.op = "PutBucketAcl"
			return a.putBucketACL(rq)
		case q.Has("versioning"), q.Has("logging"), q.Has("notification"), q.Has("accelerate"), q.Has("requestPayment"):
			rq.op = "PutBucketConfig"
			return notImplemented("Configuring this bucket feature")
		}
		rq.op = "CreateBucket"
		return a.createBucket(rq)
	case http.MethodDelete:
		rq.op = "DeleteBucket"
		return a.deleteBucket(rq)
	case http.MethodPost:
		if q.Has("delete") {
			rq.op = "DeleteObjects"
			return a.deleteObjects(rq)
		}
		rq.op = "PostObject"
		return notImplemented("Browser-based POST upload")
	}
	rq.op = "Bucket"
	return awserr.New("MethodNotAllowed", "")
}

func (a *API) objectOp(rq *request) error {
	q := rq.q
	if len(rq.key) > 1024 {
		rq.op = "Object"
		return awserr.New("KeyTooLongError", "")
	}
	switch rq.r.Method {
	case http.MethodGet:
		switch {
		case q.Has("acl"):
			rq.op = "GetObjectAcl"
			return a.getObjectACL(rq)
		case q.Has("uploadId"):
			rq.op = "ListParts"
			return a.listParts(rq)
		case q.Has("tagging"):
			rq.op = "GetObjectTagging"
			return a.getObjectTagging(rq)
		case q.Has("attributes"):
			rq.op = "GetObjectAttributes"
			return a.getObjectAttributes(rq)
		}
		rq.op = "GetObject"
		return a.getObject(rq)
	case http.MethodHead:
		rq.op = "HeadObject"
		return a.getObject(rq)
	case http.MethodPut:
		switch {
		case q.Has("acl"):
			rq.op = "PutObjectAcl"
			return a.putObjectACL(rq)
		case q.Has("tagging"):
			rq.op = "PutObjectTagging"
			return a.putObjectTagging(rq)
		case q.Has("uploadId") || q.Has("partNumber"):
			if rq.r.Header.Get("X-Amz-Copy-Source") != "" {
				rq.op = "UploadPartCopy"
				return a.uploadPartCopy(rq)
			}
			rq.op = "UploadPart"
			return a.uploadPart(rq)
		case rq.r.Header.Get("X-Amz-Copy-Source") != "":
			rq.op = "CopyObject"
			return a.copyObject(rq)
		}
		rq.op = "PutObject"
		return a.putObject(rq)
	case http.MethodDelete:
		switch {
		case q.Has("uploadId"):
			rq.op = "AbortMultipartUpload"
			return a.abortUpload(rq)
		case q.Has("tagging"):
			rq.op = "DeleteObjectTagging"
			return a.deleteObjectTagging(rq)
		}
		rq.op = "DeleteObject"
		return a.deleteObject(rq)
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			rq.op = "CreateMultipartUpload"
			return a.createUpload(rq)
		case q.Has("uploadId"):
			rq.op = "CompleteMultipartUpload"
			return a.completeUpload(rq)
		}
	}
	rq.op = "Object"
	return awserr.New("MethodNotAllowed", "")
}
