package dsfeatures

import (
	"net/http"
	"runtime"
	"testing"
	"time"
)

func TestOptionDefaults(t *testing.T) {
	c, err := NewClient(Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options()
	if o.URL != DefaultURL || o.Token != "" || o.UserAgent != "dsfeatures-go/"+Version {
		t.Errorf("%+v", o)
	}
	if o.Timeout != 5*time.Second || o.DialTimeout != 5*time.Second || o.MaxRetries != 3 {
		t.Errorf("%+v", o)
	}
	if o.MinRetryBackoff != 50*time.Millisecond || o.MaxRetryBackoff != 2*time.Second {
		t.Errorf("%+v", o)
	}
	if o.PoolSize != 10*runtime.GOMAXPROCS(0) || o.HTTPClient != nil {
		t.Errorf("%+v", o)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

func TestOptionsDisabledByMinusOne(t *testing.T) {
	c, err := NewClient(Options{URL: "https://dsf.example.com/prefix/", Timeout: -1, MaxRetries: -1, MinRetryBackoff: -1})
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options()
	if o.URL != "https://dsf.example.com/prefix" || o.Timeout != 0 || o.MaxRetries != 0 || o.MinRetryBackoff != 0 {
		t.Errorf("%+v", o)
	}
}

func TestOptionsBackoffCapNotBelowFirstBackoff(t *testing.T) {
	c, err := NewClient(Options{MinRetryBackoff: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Options(); o.MaxRetryBackoff != 3*time.Second {
		t.Errorf("%+v", o)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []Options{
		{URL: "127.0.0.1:8080"},
		{URL: "ftp://host"},
		{URL: "http://"},
		{URL: "http://host/?a=b"},
		{URL: "http://host/#x"},
		{URL: "http://[::1"},
		{Token: "   "},
		{Token: "a\nb"},
	} {
		if c, err := NewClient(o); err == nil {
			t.Errorf("%+v: accepted as %+v", o, c.Options())
		}
	}
}

func TestOwnHTTPClientIsUsed(t *testing.T) {
	hc := &http.Client{}
	c, err := NewClient(Options{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if c.http != hc || c.transport != nil {
		t.Error("the given http.Client is used as it is")
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}
