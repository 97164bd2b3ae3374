package s3api

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/acl"
)

type objectAttributes struct {
	XMLName      xml.Name     `xml:"GetObjectAttributesResponse"`
	NS           string       `xml:"xmlns,attr"`
	ETag         string       `xml:"ETag,omitempty"`
	Checksum     *xmlChecksum `xml:"Checksum"`
	ObjectParts  *xmlParts    `xml:"ObjectParts"`
	StorageClass string       `xml:"StorageClass,omitempty"`
	ObjectSize   *int64       `xml:"ObjectSize"`
}

type xmlChecksum struct {
	xmlChecksums
	ChecksumType string `xml:"ChecksumType,omitempty"`
}

type xmlParts struct {
	PartsCount           int             `xml:"PartsCount"`
	PartNumberMarker     int             `xml:"PartNumberMarker"`
	NextPartNumberMarker int             `xml:"NextPartNumberMarker"`
	MaxParts             int             `xml:"MaxParts"`
	IsTruncated          bool            `xml:"IsTruncated"`
	Parts                []xmlObjectPart `xml:"Part"`
}

type xmlObjectPart struct {
	PartNumber int   `xml:"PartNumber"`
	Size       int64 `xml:"Size"`
	xmlChecksums
}

// objectAttributeNames are the values x-amz-object-attributes may list.
var objectAttributeNames = map[string]bool{"ETag": true, "Checksum": true, "ObjectParts": true, "StorageClass": true, "ObjectSize": true}

func (a *API) getObjectAttributes(rq *request) error {
	h := rq.r.Header
	want := map[string]bool{}
	for _, v := range h.Values("X-Amz-Object-Attributes") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if !objectAttributeNames[name] {
					return awserr.New("InvalidArgument", "Invalid attribute name specified.").
						With("ArgumentName", "x-amz-object-attributes").With("ArgumentValue", name)
				}
				want[name] = true
			}
		}
	}
	if len(want) == 0 {
		return awserr.New("InvalidArgument", "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty").
			With("ArgumentName", "x-amz-object-attributes")
	}
	max, marker := maxList, 0
	for name, dst := range map[string]*int{"X-Amz-Max-Parts": &max, "X-Amz-Part-Number-Marker": &marker} {
		if v := h.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return awserr.Newf("InvalidArgument", "Provided %s not an integer or within integer range", strings.ToLower(name)).
					With("ArgumentName", strings.ToLower(name)).With("ArgumentValue", v)
			}
			*dst = min(n, maxList)
		}
	}
	o, err := a.store.Head(rq.ctx, rq.bucket, rq.key)
	if err != nil {
		return err
	}
	if !o.ACL.Allows(rq.who, acl.Read) {
		return accessDenied()
	}
	if err := readConditions(h).check(&o); err != nil {
		return err
	}
	out := objectAttributes{NS: ns}
	if want["ETag"] {
		out.ETag = o.ETag
	}
	if want["StorageClass"] {
		out.StorageClass = storageClass(o.Meta)
	}
	if want["ObjectSize"] {
		out.ObjectSize = &o.Size
	}
	if want["Checksum"] && o.Checksum != nil {
		out.Checksum = &xmlChecksum{ChecksumType: checksumType(o.Checksum)}
		out.Checksum.set(o.Checksum)
	}
	if want["ObjectParts"] && o.Parts > 0 {
		parts := &xmlParts{PartsCount: o.Parts, PartNumberMarker: marker, MaxParts: max}
		for _, c := range o.Chunks {
			if c.Part <= marker {
				continue
			}
			if len(parts.Parts) == max {
				parts.IsTruncated = true
				break
			}
			p := xmlObjectPart{PartNumber: c.Part, Size: c.Size}
			p.set(c.Checksum)
			parts.Parts = append(parts.Parts, p)
			parts.NextPartNumberMarker = c.Part
		}
		out.ObjectParts = parts
	}
	rq.w.Header().Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
	return writeXML(rq.w, out)
}
