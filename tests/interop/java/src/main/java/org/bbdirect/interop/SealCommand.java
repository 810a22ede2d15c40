package org.bbdirect.interop;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;

import javax.activation.DataHandler;
import javax.mail.Session;
import javax.mail.internet.InternetAddress;
import javax.mail.internet.MimeBodyPart;
import javax.mail.internet.MimeMessage;
import javax.mail.internet.MimeMultipart;
import javax.mail.util.ByteArrayDataSource;

import org.nhindirect.stagent.DefaultNHINDAgent;
import org.nhindirect.stagent.OutgoingMessage;
import org.nhindirect.stagent.cryptography.SMIMECryptographerImpl;

/**
 * {@code seal}: compose an RFC 5322 message (text + attachments) and run it through the RI's
 * DefaultNHINDAgent.processOutgoing, which wraps, signs and encrypts it for the given recipient certificates.
 */
final class SealCommand {
    private SealCommand() {}

    static Map<String, Object> run(Args a) throws Exception {
        String from = a.req("from");
        List<String> to = a.all("to");
        if (to.isEmpty()) throw new Args.UsageException("--to is required");
        RiAgent.Identity self = RiAgent.identity(a.all("cert"), a.all("key"));
        List<X509Certificate> recipients = RiAgent.leaves(a.all("recipient-cert"));
        List<X509Certificate> anchors = RiAgent.certs(a.all("anchor"));
        SMIMECryptographerImpl crypto = RiAgent.cryptographer(a.opt("enc", "AES256"), a.opt("digest", "SHA256"));

        byte[] plain = compose(from, to, a.opt("subject", "Direct message"), a.opt("text", "See attachment."),
                a.all("attach"), a.flag("no-notification-request"));
        if (a.opt("plain-out", null) != null) {
            Files.write(Path.of(a.opt("plain-out", null)), plain);
        }
        String domain = from.substring(from.indexOf('@') + 1).toLowerCase();
        DefaultNHINDAgent agent = RiAgent.agent(List.of(domain), self, recipients, anchors, crypto);
        OutgoingMessage out = agent.processOutgoing(new String(plain, StandardCharsets.US_ASCII));

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        out.getMessage().writeTo(bytes);
        byte[] sealed = bytes.toByteArray();
        Files.write(Path.of(a.req("out")), sealed);

        Map<String, Object> res = new LinkedHashMap<>();
        res.put("ok", true);
        res.put("error", null);
        res.put("message_id", out.getMessage().getMessageID());
        res.put("outer", MessageInfo.headers(out.getMessage()));
        res.put("envelope", MessageInfo.envelope(sealed));
        return res;
    }

    /** The original message, as the Direct Applicability Statement expects it before wrapping. */
    static byte[] compose(String from, List<String> to, String subject, String text, List<String> attachments,
                          boolean noNotificationRequest) throws Exception {
        Session session = Session.getInstance(new Properties());
        MimeMessage m = new MimeMessage(session);
        m.setFrom(new InternetAddress(from));
        for (String t : to) m.addRecipient(javax.mail.Message.RecipientType.TO, new InternetAddress(t));
        m.setSubject(subject);
        m.setSentDate(new Date());
        MimeMultipart mixed = new MimeMultipart("mixed");
        MimeBodyPart body = new MimeBodyPart();
        body.setText(text, "utf-8");
        body.setHeader("Content-Transfer-Encoding", "quoted-printable");
        mixed.addBodyPart(body);
        for (String file : attachments) {
            Path p = Path.of(file);
            String type = p.toString().endsWith(".xml") ? "application/xml" : "application/octet-stream";
            MimeBodyPart part = new MimeBodyPart();
            part.setDataHandler(new DataHandler(new ByteArrayDataSource(Files.readAllBytes(p), type)));
            part.setFileName(p.getFileName().toString());
            part.setDisposition(MimeBodyPart.ATTACHMENT);
            part.setHeader("Content-Transfer-Encoding", "base64");
            mixed.addBodyPart(part);
        }
        m.setContent(mixed);
        if (!noNotificationRequest) {
            // Implementation Guide for Delivery Notification in Direct 1.0, 3.3: ask for timely & reliable MDNs.
            m.setHeader("Disposition-Notification-Options", "X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true");
        }
        m.saveChanges();
        m.setHeader("Message-ID", "<" + UUID.randomUUID() + "@" + from.substring(from.indexOf('@') + 1) + ">");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        m.writeTo(bytes);
        return bytes.toByteArray();
    }
}
