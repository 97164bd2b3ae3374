package ec2api

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/pkg/awserr"
)

// The IAM actions of the cloud: signing certificates, which users need to
// register bundled images. IAM answers in its own envelope.

const iamNamespace = "https://iam.amazonaws.com/doc/2010-05-08/"

// iamBody is the result of an IAM action, written in IAM's envelope:
// <ActionResponse><ActionResult>...</ActionResult><ResponseMetadata>.
type iamBody struct{ result any }

func (b iamBody) write(w http.ResponseWriter, action, requestID string) error {
	type metadata struct {
		RequestID string `xml:"RequestId"`
	}
	var inner bytes.Buffer
	enc := xml.NewEncoder(&inner)
	if err := enc.EncodeElement(b.result, xml.StartElement{Name: xml.Name{Local: action + "Result"}}); err != nil {
		return err
	}
	var meta bytes.Buffer
	if err := xml.NewEncoder(&meta).EncodeElement(metadata{requestID}, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return err
	}
	body := []byte(xml.Header + `<` + action + `Response xmlns="` + iamNamespace + `">`)
	body = append(body, inner.Bytes()...)
	body = append(body, meta.Bytes()...)
	body = append(body, `</`+action+`Response>`...)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, err := w.Write(body)
	return err
}

type iamCertificate struct {
	UserName        string `xml:"UserName"`
	CertificateID   string `xml:"CertificateId"`
	CertificateBody string `xml:"CertificateBody"`
	Status          string `xml:"Status"`
	UploadDate      string `xml:"UploadDate"`
}

func certXML(name string, c accounts.Cert) iamCertificate {
	return iamCertificate{UserName: name, CertificateID: c.ID, CertificateBody: c.PEM, Status: "Active", UploadDate: ec2Time(c.Created)}
}

func (a *API) uploadSigningCertificate(rq *request) (any, error) {
	body, err := rq.p.Required("CertificateBody")
	if err != nil {
		return nil, err
	}
	if u := rq.p.String("UserName"); u != "" && u != rq.account.Name {
		return nil, awserr.Newf("NoSuchEntity", "The user with name %s cannot be found.", u)
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	c, err := a.accounts.AddCert(rq.ctx, rq.account.ID, body)
	if errors.Is(err, accounts.ErrBadCert) {
		return nil, awserr.New("MalformedCertificate", "The certificate is not valid: expecting one PEM X.509 certificate.")
	}
	if err != nil {
		return nil, err
	}
	return iamBody{struct {
		Certificate iamCertificate `xml:"Certificate"`
	}{certXML(rq.account.Name, c)}}, nil
}

func (a *API) listSigningCertificates(rq *request) (any, error) {
	if u := rq.p.String("UserName"); u != "" && u != rq.account.Name {
		return nil, awserr.Newf("NoSuchEntity", "The user with name %s cannot be found.", u)
	}
	rq.p.Skip("Marker", "MaxItems")
	if err := rq.ready(); err != nil {
		return nil, err
	}
	certs, err := a.accounts.Certs(rq.ctx, rq.account.ID)
	if err != nil {
		return nil, err
	}
	out := struct {
		Certificates []iamCertificate `xml:"Certificates>member"`
		IsTruncated  bool             `xml:"IsTruncated"`
	}{Certificates: []iamCertificate{}}
	for _, c := range certs {
		out.Certificates = append(out.Certificates, certXML(rq.account.Name, c))
	}
	return iamBody{out}, nil
}
