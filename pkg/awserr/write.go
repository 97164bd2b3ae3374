package awserr

import (
	"encoding/xml"
	"net/http"
	"strconv"
)

// WriteS3 writes e as S3 does: the status, and for every method but HEAD
// an <Error> document with Code, Message, the extra fields, Resource and
// RequestId. The caller has already set x-amz-request-id.
func WriteS3(w http.ResponseWriter, r *http.Request, e *Error, resource, requestID, hostID string) {
	h := w.Header()
	if e.Status == http.StatusNotModified || r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	body := s3Doc(e, resource, requestID, hostID)
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

func s3Doc(e *Error, resource, requestID, hostID string) []byte {
	buf := []byte(xml.Header)
	buf = append(buf, "<Error>"...)
	buf = appendElem(buf, "Code", e.Code)
	buf = appendElem(buf, "Message", e.Message)
	for _, f := range e.Fields {
		buf = appendElem(buf, f.Name, f.Value)
	}
	if resource != "" {
		buf = appendElem(buf, "Resource", resource)
	}
	buf = appendElem(buf, "RequestId", requestID)
	buf = appendElem(buf, "HostId", hostID)
	return append(buf, "</Error>"...)
}

// WriteEC2 writes e in the EC2 Query API's shape:
// <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>.
func WriteEC2(w http.ResponseWriter, e *Error, requestID string) {
	buf := []byte(xml.Header)
	buf = append(buf, "<Response><Errors><Error>"...)
	buf = appendElem(buf, "Code", e.Code)
	buf = appendElem(buf, "Message", e.Message)
	buf = append(buf, "</Error></Errors>"...)
	buf = appendElem(buf, "RequestID", requestID)
	buf = append(buf, "</Response>"...)
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(buf)
}

func appendElem(buf []byte, name, value string) []byte {
	buf = append(buf, '<')
	buf = append(buf, name...)
	buf = append(buf, '>')
	buf = appendEscaped(buf, value)
	buf = append(buf, "</"...)
	buf = append(buf, name...)
	return append(buf, '>')
}

// appendEscaped appends s with XML's special characters escaped.
func appendEscaped(buf []byte, s string) []byte {
	w := byteWriter{buf}
	_ = xml.EscapeText(&w, []byte(s))
	return w.b
}

type byteWriter struct{ b []byte }

func (w *byteWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
