"""コンビニ交付: the kiosk where a resident with the card and its PIN gets a 住民票の写し."""
