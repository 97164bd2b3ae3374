package ec2api

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/keypair"
	"github.com/koala-cloud/koala/cloudctl/internal/keypairs"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

type createKeyPairResult struct {
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyMaterial    string   `xml:"keyMaterial,omitempty"`
	KeyPairID      string   `xml:"keyPairId"`
	Tags           []xmlTag `xml:"tagSet>item"`
}

// addKeyPair stores a new key pair with its tags.
func (a *API) addKeyPair(rq *request, name string, k keypair.Key, ts []tags.Tag) (keypairs.KeyPair, error) {
	kp := keypairs.KeyPair{ID: ident.Resource("key"), Name: name, Type: string(k.Type),
		Fingerprint: k.Fingerprint, PublicKey: k.PublicOpenSSH, Created: a.cfg.Now().UTC()}
	err := a.update(func(tx *store.Tx) error {
		if err := keypairs.Create(tx, rq.account.ID, kp); err != nil {
			return err
		}
		return tags.Add(tx, rq.account.ID, kp.ID, ts)
	})
	return kp, err
}

func (a *API) createKeyPair(rq *request) (any, error) {
	p := rq.p
	name, err := p.Required("KeyName")
	if err != nil {
		return nil, err
	}
	typ := keypair.Type(strings.ToLower(p.String("KeyType")))
	switch typ {
	case "":
		typ = keypair.RSA
	case keypair.RSA, keypair.Ed25519:
	default:
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter keyType is invalid. Valid values are rsa and ed25519.", p.String("KeyType"))
	}
	if f := p.String("KeyFormat"); f != "" && f != "pem" {
		return nil, awserr.Newf("InvalidParameterValue", "Value (%s) for parameter keyFormat is invalid. Only pem is supported.", f)
	}
	ts, err := tagSpecs(p, "key-pair")
	if err != nil {
		return nil, err
	}
	if err := keypairs.CheckName(name); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	k, err := keypair.Generate(typ)
	if err != nil {
		return nil, err
	}
	kp, err := a.addKeyPair(rq, name, k, ts)
	if err != nil {
		return nil, err
	}
	return createKeyPairResult{KeyName: kp.Name, KeyFingerprint: kp.Fingerprint, KeyMaterial: string(k.PrivatePEM),
		KeyPairID: kp.ID, Tags: tagSet(ts)}, nil
}

func (a *API) importKeyPair(rq *request) (any, error) {
	p := rq.p
	name, err := p.Required("KeyName")
	if err != nil {
		return nil, err
	}
	material, err := p.Required("PublicKeyMaterial")
	if err != nil {
		return nil, err
	}
	ts, err := tagSpecs(p, "key-pair")
	if err != nil {
		return nil, err
	}
	if err := keypairs.CheckName(name); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	// The Query API carries the material base64-encoded; some old tools
	// send the OpenSSH line itself.
	raw, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(material))
	if derr != nil {
		raw = []byte(material)
	}
	k, err := keypair.Import(raw)
	if err != nil {
		return nil, err
	}
	kp, err := a.addKeyPair(rq, name, k, ts)
	if err != nil {
		return nil, err
	}
	return createKeyPairResult{KeyName: kp.Name, KeyFingerprint: kp.Fingerprint, KeyPairID: kp.ID, Tags: tagSet(ts)}, nil
}

type keyPairItem struct {
	KeyPairID      string   `xml:"keyPairId"`
	KeyName        string   `xml:"keyName"`
	KeyFingerprint string   `xml:"keyFingerprint"`
	KeyType        string   `xml:"keyType"`
	Tags           []xmlTag `xml:"tagSet>item"`
	PublicKey      string   `xml:"publicKey,omitempty"`
	CreateTime     string   `xml:"createTime"`
}

type describeKeyPairsResult struct {
	Keys []keyPairItem `xml:"keySet>item"`
}

func (a *API) describeKeyPairs(rq *request) (any, error) {
	p := rq.p
	names, err := p.List("KeyName")
	if err != nil {
		return nil, err
	}
	ids, err := p.List("KeyPairId")
	if err != nil {
		return nil, err
	}
	withPublic, err := p.Bool("IncludePublicKey")
	if err != nil {
		return nil, err
	}
	filters, err := p.Filters()
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters, true, "key-pair-id", "key-name", "fingerprint", "key-type"); err != nil {
		return nil, err
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	out := describeKeyPairsResult{Keys: []keyPairItem{}}
	err = a.view(func(tx *store.Tx) error {
		var chosen []keypairs.KeyPair
		if len(names)+len(ids) == 0 {
			all, err := keypairs.List(tx, rq.account.ID)
			if err != nil {
				return err
			}
			chosen = all
		}
		for _, n := range names {
			kp, err := keypairs.Find(tx, rq.account.ID, n, false)
			if err != nil {
				return err
			}
			chosen = append(chosen, kp)
		}
		for _, id := range ids {
			kp, err := keypairs.Find(tx, rq.account.ID, id, true)
			if err != nil {
				return err
			}
			chosen = append(chosen, kp)
		}
		seen := map[string]bool{}
		for _, kp := range chosen {
			if seen[kp.ID] {
				continue
			}
			seen[kp.ID] = true
			ts, err := tags.Of(tx, rq.account.ID, kp.ID)
			if err != nil {
				return err
			}
			if !match(filters, attrs{"key-pair-id": {kp.ID}, "key-name": {kp.Name}, "fingerprint": {kp.Fingerprint}, "key-type": {kp.Type}}, ts) {
				continue
			}
			item := keyPairItem{KeyPairID: kp.ID, KeyName: kp.Name, KeyFingerprint: kp.Fingerprint, KeyType: kp.Type,
				Tags: tagSet(ts), CreateTime: ec2Time(kp.Created)}
			if withPublic {
				// EC2 shows the key's name as its comment.
				item.PublicKey = kp.PublicKey + " " + kp.Name
			}
			out.Keys = append(out.Keys, item)
		}
		return nil
	})
	return out, err
}

type deleteKeyPairResult struct {
	Return    bool   `xml:"return"`
	KeyPairID string `xml:"keyPairId,omitempty"`
}

func (a *API) deleteKeyPair(rq *request) (any, error) {
	p := rq.p
	name, id := p.String("KeyName"), p.String("KeyPairId")
	if name == "" && id == "" {
		return nil, awserr.New("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
	}
	if err := rq.ready(); err != nil {
		return nil, err
	}
	var deleted string
	err := a.update(func(tx *store.Tx) error {
		var err error
		if id != "" {
			deleted, err = keypairs.Delete(tx, rq.account.ID, id, true)
		} else {
			deleted, err = keypairs.Delete(tx, rq.account.ID, name, false)
		}
		if err != nil || deleted == "" {
			return err
		}
		return tags.Drop(tx, rq.account.ID, deleted)
	})
	return deleteKeyPairResult{Return: true, KeyPairID: deleted}, err
}

// ec2Time formats t as EC2 does in responses.
func ec2Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
