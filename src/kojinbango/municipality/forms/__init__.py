"""The certificate desk (証明書交付): 住民票の写し, 住民票記載事項証明書, 交付通知書 and letters as
signed PDF, for the counter, the kiosk (コンビニ交付) and push notices."""
