#!/bin/sh
# tcpserver (ucspi-tcp) with STARTTLS: smtpd-tls wraps smtpd (UCSPI-TLS);
# tcpserver sets TCPREMOTEIP, which smtpd uses as the client address.
exec tcpserver -v -c 100 -R -H 0.0.0.0 25 \
	/usr/local/sbin/smtpd-tls -u smtpd-tls \
	-c /etc/letsencrypt/live/mx.example.org/fullchain.pem \
	-k /etc/letsencrypt/live/mx.example.org/privkey.pem \
	-- /usr/local/sbin/smtpd -c /etc/smtpd.conf
