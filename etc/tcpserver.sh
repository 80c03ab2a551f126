#!/bin/sh
# tcpserver (ucspi-tcp): one smtpd per connection; tcpserver sets
# TCPREMOTEIP, which smtpd uses as the client address.
exec tcpserver -v -c 100 -R -H 0.0.0.0 25 /usr/local/sbin/smtpd -c /etc/smtpd.conf
