package s3api

import (
	"net/http"
	"net/url"
	"sort"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// S3's limits on object tags.
const (
	maxTags        = 10
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

func invalidTag(msg string) error { return awserr.New("InvalidTag", msg) }

func checkTags(tags []xmlTag) error {
	if len(tags) > maxTags {
		return invalidTag("Object tags cannot be greater than 10")
	}
	seen := map[string]bool{}
	for _, t := range tags {
		switch {
		case t.Key == "" || len([]rune(t.Key)) > maxTagKeyLen:
			return invalidTag("The TagKey you have provided is invalid")
		case len([]rune(t.Value)) > maxTagValueLen:
			return invalidTag("The TagValue you have provided is invalid")
		case seen[t.Key]:
			return invalidTag("Cannot provide multiple Tags with the same key")
		}
		seen[t.Key] = true
	}
	return nil
}

// parseTagQuery reads tags in x-amz-tagging's form: a URL query.
func parseTagQuery(v string) ([]xmlTag, error) {
	q, err := url.ParseQuery(v)
	if err != nil {
		return nil, invalidTag("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
	}
	var tags []xmlTag
	for k, vs := range q {
		if len(vs) != 1 {
			return nil, invalidTag("Cannot provide multiple Tags with the same key")
		}
		tags = append(tags, xmlTag{k, vs[0]})
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	return tags, checkTags(tags)
}

func tagQuery(tags []xmlTag) string {
	q := url.Values{}
	for _, t := range tags {
		q.Set(t.Key, t.Value)
	}
	return q.Encode()
}

func (a *API) getObjectTagging(rq *request) error {
	o, err := a.store.Head(rq.ctx, rq.bucket, rq.key)
	if err != nil {
		return err
	}
	if !o.ACL.Allows(rq.who, acl.Read) {
		return accessDenied()
	}
	tags, _ := parseTagQuery(o.Meta.Tagging)
	return writeXML(rq.w, tagging{NS: ns, Tags: tags})
}

func (a *API) putObjectTagging(rq *request) error {
	if _, err := a.bucketFor(rq, acl.Write); err != nil {
		return err
	}
	var t tagging
	if err := readXML(rq.r.Body, &t); err != nil {
		return err
	}
	if err := checkTags(t.Tags); err != nil {
		return err
	}
	return a.setTags(rq, tagQuery(t.Tags), http.StatusOK)
}

func (a *API) deleteObjectTagging(rq *request) error {
	if _, err := a.bucketFor(rq, acl.Write); err != nil {
		return err
	}
	return a.setTags(rq, "", http.StatusNoContent)
}

func (a *API) setTags(rq *request, tags string, status int) error {
	err := a.store.UpdateObject(rq.ctx, rq.bucket, rq.key, func(o *objstore.Object) error {
		o.Meta.Tagging = tags
		return nil
	})
	if err != nil {
		return err
	}
	rq.w.WriteHeader(status)
	return nil
}
